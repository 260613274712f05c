use super::store::{MAX_PARTS, MIN_PART, part_size_for};

const MIB: u64 = 1024 * 1024;

#[test]
fn floor_without_hint() {
    assert_eq!(part_size_for(16 * MIB, None), 16 * MIB);
    assert_eq!(part_size_for(1, None), MIN_PART, "never below S3's minimum");
}

#[test]
fn grows_so_parts_stay_under_the_limit() {
    for size in [0, 10 * MIB, 100 * 1024 * MIB, 2 * 1024 * 1024 * MIB] {
        let part = part_size_for(16 * MIB, Some(size));
        assert_eq!(part % MIB, 0, "whole MiB parts");
        // Even 50 % more data than hinted fits.
        assert!((size + size / 2).div_ceil(part) <= MAX_PARTS, "size {size} part {part}");
    }
}
