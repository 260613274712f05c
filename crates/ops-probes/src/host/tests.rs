//! Parsers of `/proc` files, mount selection and thresholds.

use super::*;

const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=8123456k 0 0
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1631224k,mode=755 0 0
/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda15 /boot/efi vfat rw,relatime 0 0
/dev/loop0 /snap/core20/2318 squashfs ro,nodev,relatime 0 0
/dev/sdb /mnt/my\\040data ext4 rw,relatime 0 0
nas:/export/backups /mnt/backups nfs4 rw,relatime 0 0
/dev/sda1 /var/lib/docker ext4 rw,relatime 0 0
overlay /var/lib/docker/overlay2/0af3/merged overlay rw,relatime,lowerdir=/var/lib/docker/overlay2/l/X 0 0
shm /var/lib/docker/containers/0af3/mounts/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k 0 0
nsfs /run/docker/netns/1c2d nsfs rw 0 0
broken-line
";

fn paths(targets: &[DiskTarget]) -> Vec<&str> {
    targets.iter().map(|t| t.path.to_str().unwrap()).collect()
}

#[test]
fn parses_mounts_with_escapes() {
    let mounts = parse_mounts(MOUNTS);
    assert_eq!(mounts.len(), 14, "the malformed line is skipped");
    assert_eq!(mounts[4], Mount { source: "/dev/sda1".into(), path: "/".into(), fs_type: "ext4".into() });
    assert_eq!(mounts[8].path, PathBuf::from("/mnt/my data"));
    assert!(is_pseudo("tmpfs") && is_pseudo("proc") && is_pseudo("squashfs") && !is_pseudo("ext4"));
}

#[test]
fn real_filesystems_once_each_with_the_docker_root() {
    let mounts = parse_mounts(MOUNTS);
    let targets = disk_targets(&mounts, &[], Some(Path::new("/var/lib/docker")));
    assert_eq!(paths(&targets), ["/", "/boot/efi", "/mnt/backups", "/mnt/my data"]);
    assert_eq!(targets.iter().filter(|t| t.docker_root).map(|t| t.path.to_str().unwrap()).collect::<Vec<_>>(), ["/"]);
    assert!(targets.iter().all(|t| !t.required));
}

#[test]
fn a_docker_root_on_its_own_disk_is_its_own_target() {
    let mut mounts = parse_mounts(MOUNTS);
    mounts.retain(|m| m.path != Path::new("/var/lib/docker"));
    mounts.push(Mount { source: "/dev/sdc".into(), path: "/data".into(), fs_type: "xfs".into() });
    let targets = disk_targets(&mounts, &[], Some(Path::new("/data/docker")));
    assert_eq!(paths(&targets), ["/", "/data", "/boot/efi", "/mnt/backups", "/mnt/my data"]);
    assert!(targets[1].docker_root);
}

#[test]
fn configured_mounts_replace_discovery() {
    let mounts = parse_mounts(MOUNTS);
    let targets = disk_targets(&mounts, &["/srv".into()], Some(Path::new("/var/lib/docker")));
    // /srv lives on /dev/sda1 like the data root.
    assert_eq!(paths(&targets), ["/srv"]);
    assert!(targets[0].docker_root && targets[0].required);
    let targets = disk_targets(&mounts, &["/mnt/backups".into()], Some(Path::new("/var/lib/docker")));
    assert_eq!(paths(&targets), ["/mnt/backups", "/var/lib/docker"]);
    assert!(targets[1].docker_root);
    let nothing_known = disk_targets(&[], &[], Some(Path::new("/var/lib/docker")));
    assert_eq!(paths(&nothing_known), ["/var/lib/docker"]);
}

fn disk(used_gib: u64, avail_gib: u64) -> DiskStats {
    const GIB: u64 = 1024 * 1024 * 1024;
    DiskStats {
        total_bytes: (used_gib + avail_gib + 2) * GIB,
        used_bytes: used_gib * GIB,
        available_bytes: avail_gib * GIB,
        inodes_total: 1000,
        inodes_free: 900,
        read_only: false,
        fs_id: 1,
    }
}

#[test]
fn disk_thresholds_like_df() {
    let t = HostThresholds::default();
    let root = DiskTarget { path: "/".into(), docker_root: true, required: false };
    let (obs, p) = assess_disk(&root, &disk(86, 14), &t);
    assert_eq!(obs[0].labels["mount"], "/");
    assert_eq!((obs[0].name.as_str(), obs[0].value), ("disk_used", 86.0));
    let p = p.unwrap();
    assert_eq!((p.runbook, p.status), (Runbook::DiskFull, Status::Critical));
    assert_eq!(p.message, "/ (holds the Docker data root): 86 % used, 14.0 GiB free of 102.0 GiB");
    assert_eq!(assess_disk(&root, &disk(71, 29), &t).1.unwrap().status, Status::Warn);
    assert!(assess_disk(&root, &disk(70, 30), &t).1.is_none(), "70 % is not over 70 %");
    let mut inodes = disk(10, 90);
    inodes.inodes_free = 5;
    let p = assess_disk(&root, &inodes, &t).1.unwrap();
    assert_eq!(p.status, Status::Critical);
    assert!(p.message.contains("100 % of inodes used"), "{}", p.message);
    let mut ro = disk(99, 1);
    ro.read_only = true;
    assert!(assess_disk(&root, &ro, &t).1.is_none());
}

const MEMINFO: &str = "\
MemTotal:        4000000 kB
MemFree:          200000 kB
MemAvailable:     760000 kB
Buffers:           50000 kB
Cached:           400000 kB
SwapTotal:       1000000 kB
SwapFree:         250000 kB
";

#[test]
fn memory_used_is_total_minus_available() {
    let m = parse_meminfo(MEMINFO).unwrap();
    assert_eq!(m.total_bytes, 4_000_000 * 1024);
    assert_eq!(m.used_bytes(), 3_240_000 * 1024);
    let (obs, p) = assess_memory(&m, &HostThresholds::default());
    assert_eq!(obs[0].value, 81.0);
    let p = p.unwrap();
    assert_eq!((p.runbook, p.status), (Runbook::MemoryPressure, Status::Critical));
    assert_eq!(p.evidence, ["swap 732.4 MiB of 976.6 MiB in use"]);
    let old_kernel = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 100 kB\nCached: 300 kB\n").unwrap();
    assert_eq!(old_kernel.available_bytes, 500 * 1024);
    assert_eq!(parse_meminfo("garbage"), None);
}

#[test]
fn load_per_online_core() {
    let l = parse_loadavg("0.52 3.40 2.10 1/467 12345\n").unwrap();
    assert_eq!((l.one, l.five, l.fifteen), (0.52, 3.40, 2.10));
    assert_eq!(parse_loadavg("1.0 2.0"), None);
    assert_eq!(parse_cpu_list("0-3\n"), Some(4));
    assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
    assert_eq!(parse_cpu_list("0"), Some(1));
    assert_eq!(parse_cpu_list("x"), None);
    let t = HostThresholds::default();
    let p = assess_load(&l, 2, &t).1.unwrap();
    assert_eq!((p.runbook, p.status), (Runbook::HighLoad, Status::Warn));
    assert_eq!(p.message, "5-minute load 3.40 on 2 cores (1.70 per core)");
    assert_eq!(assess_load(&l, 1, &t).1.unwrap().status, Status::Critical);
    assert!(assess_load(&l, 4, &t).1.is_none());
}
