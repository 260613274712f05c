use sha2::{Digest, Sha256};

use super::store::{MAX_PARTS, MIN_PART, PartChecksums, multipart_etag, part_size_for, range_total};

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

#[test]
fn composite_checksum_is_s3s_checksum_of_the_part_checksums() {
    // Python: base64(sha256(sha256(b"first part") + sha256(b"second"))) + "-2".
    let sums = PartChecksums { digests: vec![Sha256::digest(b"first part").into(), Sha256::digest(b"second").into()] };
    assert_eq!(sums.composite(), "uuadpAct5xACtSaoxUcMYjjiBHFXWk36g7Y1st+cM/I=-2");
}

#[test]
fn multipart_etag_is_the_md5_of_the_part_md5s() {
    // hashlib: md5(md5(b"part one").digest() + md5(b"part two").digest()).hexdigest() + "-2"
    let md5s = [b"part one".as_slice(), b"part two"].map(|p| <md5::Md5 as md5::Digest>::digest(p).into());
    assert_eq!(multipart_etag(&md5s), "0732917abc3288784e318ac0aab1757a-2");
}

#[test]
fn content_range_totals() {
    assert_eq!(range_total("bytes 0-4194303/125000000"), Some(125_000_000));
    assert_eq!(range_total("bytes 0-4194303/*"), None, "unknown total");
}
