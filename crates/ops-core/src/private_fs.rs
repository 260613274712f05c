//! Files only their owner may read: backups (a full copy of the database), lock files, state
//! snapshots and the audit log are created `0600` in directories created `0700`. A directory
//! that already exists keeps the mode its owner gave it.

use std::fs::{DirBuilder, OpenOptions};
use std::path::Path;

/// Mode of the files this project creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories this project creates.
pub const DIR_MODE: u32 = 0o700;

/// `mkdir -p` with [`DIR_MODE`] for every directory it creates.
///
/// # Errors
/// The I/O error.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    let mut b = DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
    b.create(path)
}

/// Open options that create files with [`FILE_MODE`].
#[must_use]
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, FILE_MODE);
    o
}

/// Writes `bytes` to a new or truncated file of [`FILE_MODE`].
///
/// # Errors
/// The I/O error.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = options().write(true).create(true).truncate(true).open(path)?;
    f.write_all(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir_all(&dir).unwrap();
        write(&dir.join("f"), b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("f")), 0o600);
    }
}
