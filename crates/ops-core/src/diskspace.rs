//! Space on this machine's filesystems: `statvfs(2)` (what `df` prints) and the blocks a file
//! holds (what `du` prints), the one home of both for the host probe and the disk cleanup.

use std::path::Path;

use crate::units::percent;

/// Space and inodes of one filesystem, from `statvfs(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats {
    /// Size.
    pub total_bytes: u64,
    /// Used (size minus free blocks).
    pub used_bytes: u64,
    /// Available to unprivileged users (free minus the root reserve).
    pub available_bytes: u64,
    /// Inodes in all (0 when the filesystem has no fixed count, like btrfs).
    pub inodes_total: u64,
    /// Free inodes.
    pub inodes_free: u64,
    /// Mounted read-only.
    pub read_only: bool,
    /// The filesystem's id (`f_fsid`): two paths with the same one are on the same filesystem.
    pub fs_id: u64,
}

impl DiskStats {
    /// Use in percent the way `df` computes `Use%`: used over used plus available, so the
    /// reserve for root counts as full.
    #[must_use]
    pub fn used_percent(&self) -> f64 {
        percent(self.used_bytes, self.used_bytes + self.available_bytes)
    }

    /// Inodes in use in percent, when the filesystem counts them.
    #[must_use]
    pub fn inodes_used_percent(&self) -> Option<f64> {
        (self.inodes_total > 0)
            .then(|| percent(self.inodes_total - self.inodes_free.min(self.inodes_total), self.inodes_total))
    }
}

/// `statvfs(2)` of the filesystem holding `path`. Blocking: a dead network filesystem can hang
/// it, so async callers run it on a blocking thread with a time limit.
///
/// # Errors
/// The system call's (no such path, permission).
pub fn stats(path: &Path) -> std::io::Result<DiskStats> {
    let s = rustix::fs::statvfs(path)?;
    let block = s.f_frsize.max(1);
    Ok(DiskStats {
        total_bytes: s.f_blocks.saturating_mul(block),
        used_bytes: s.f_blocks.saturating_sub(s.f_bfree).saturating_mul(block),
        available_bytes: s.f_bavail.saturating_mul(block),
        inodes_total: s.f_files,
        inodes_free: s.f_ffree,
        read_only: s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        fs_id: s.f_fsid,
    })
}

/// Bytes the blocks of one file take on disk (what deleting or truncating it frees; a sparse
/// file takes less than its length). Symbolic links are not followed.
///
/// # Errors
/// Those of `lstat(2)`.
pub fn file_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::symlink_metadata(path)?.blocks().saturating_mul(512))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_files_and_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![2u8; 50_000]).unwrap();
        let a = file_bytes(&dir.path().join("a")).unwrap();
        assert!((100_000..110_000).contains(&a), "{a}");
        assert!(file_bytes(&dir.path().join("missing")).is_err());
        let s = stats(dir.path()).unwrap();
        assert!(s.total_bytes >= s.used_bytes && s.fs_id == stats(&dir.path().join("sub")).unwrap().fs_id);
    }
}
