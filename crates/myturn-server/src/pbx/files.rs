//! Crash-safe file replacement: write a temp file in the same directory,
//! fsync it, rename it over the target, fsync the directory. A reader (or
//! Asterisk reloading at the wrong moment) sees the old file or the new
//! one, never half of either.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    /// The target.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Atomically replaces `dir/name` with `content`.
pub(super) fn write_atomic(dir: &Path, name: &str, content: &[u8]) -> Result<(), WriteError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let err = |source| WriteError {
        path: target.clone(),
        source,
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &target)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.conf", b"first\n").unwrap();
        write_atomic(dir.path(), "a.conf", b"second\n").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a.conf")).unwrap(),
            b"second\n"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["a.conf"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.conf", b"old\n").unwrap();
        // A directory in the temp file's place makes the write fail.
        let tmp = dir
            .path()
            .join(format!(".a.conf.tmp-{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        assert!(write_atomic(dir.path(), "a.conf", b"new\n").is_err());
        assert_eq!(std::fs::read(dir.path().join("a.conf")).unwrap(), b"old\n");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let e = write_atomic(Path::new("/nonexistent/myturn"), "a.conf", b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/myturn/a.conf"), "{e}");
    }
}
