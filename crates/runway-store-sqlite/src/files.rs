//! Who may read the database: the data directory is `0700` and the database, its
//! WAL and its shared-memory file are `0600`, because they hold password hashes,
//! token hashes, job scripts and, until a job is final, its secrets.
//!
//! The modes are set explicitly, not left to the umask: SQLite creates files
//! `0644 & !umask`, which under the usual umask `022` is world-readable, and a
//! directory made with `mode(0o700)` under an odd umask (`0277`) would be unusable.
//! The database file is created `0600` *before* SQLite opens it, because SQLite
//! gives the `-wal` and `-shm` files it creates later (and re-creates after every
//! clean close) the mode of the database file; they are checked again after opening.
//!
//! An existing data directory or file that others can read is **tightened**, and
//! the change is reported ([`PermissionFix`]) so that `runway serve` logs it: a
//! warning alone would leave the hashes readable until someone acted on it. One that
//! cannot be changed (it belongs to another user) is reported and left as it is,
//! rather than refusing to start. On other platforms nothing is changed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The data directory's mode.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the database and its `-wal` and `-shm` files.
pub const FILE_MODE: u32 = 0o600;

/// A permission that was wider than Runway wants, and what became of it.
#[derive(Debug)]
pub enum PermissionFix {
    /// It was `was` and is now `now`.
    Tightened {
        /// The directory or file.
        path: PathBuf,
        /// Its mode bits before.
        was: u32,
        /// Its mode bits now.
        now: u32,
    },
    /// It is `mode` and could not be changed (it belongs to another user).
    LeftAsIs {
        /// The directory or file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
        /// Why `chmod` failed.
        error: io::Error,
    },
}

impl fmt::Display for PermissionFix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tightened { path, was, now } => write!(
                f,
                "{} was readable by others (mode {was:04o}); it is now {now:04o}",
                path.display()
            ),
            Self::LeftAsIs { path, mode, error } => write!(
                f,
                "{} is readable by others (mode {mode:04o}) and could not be changed: {error}",
                path.display()
            ),
        }
    }
}

/// The database file's companions that SQLite creates beside it in WAL mode.
fn companions(db: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with("-wal"), with("-shm")]
}

/// Makes `dir` a private data directory holding a private database file `db_name`:
/// creates `dir` (`0700`, with any missing parents) and the empty database file
/// (`0600`) if missing, and tightens whichever of the directory, the database and
/// its `-wal` and `-shm` files others can read.
///
/// # Errors
/// If the directory or the file cannot be created, or `dir` is not a directory.
pub(crate) fn secure_dir(dir: &Path, db_name: &str) -> io::Result<Vec<PermissionFix>> {
    let mut fixes = Vec::new();
    imp::ensure_dir(dir, &mut fixes)?;
    let db = dir.join(db_name);
    imp::ensure_file(&db, &mut fixes)?;
    for companion in companions(&db) {
        imp::tighten_if_present(&companion, FILE_MODE, &mut fixes)?;
    }
    Ok(fixes)
}

/// Creates the database file `0600` if it is missing, and its parent `0700` if
/// that is missing (an existing parent is left alone: it may be `/tmp`).
pub(crate) fn create_private_file(db: &Path) -> io::Result<()> {
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        imp::ensure_dir(parent, &mut Vec::new())?;
    }
    imp::ensure_file(db, &mut Vec::new())
}

/// Tightens the `-wal` and `-shm` files once SQLite has made them.
pub(crate) fn secure_companions(db: &Path) -> io::Result<Vec<PermissionFix>> {
    let mut fixes = Vec::new();
    for companion in companions(db) {
        imp::tighten_if_present(&companion, FILE_MODE, &mut fixes)?;
    }
    Ok(fixes)
}

#[cfg(unix)]
mod imp {
    use std::fs::{self, DirBuilder, OpenOptions, Permissions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    use std::path::Path;

    use super::{DIR_MODE, FILE_MODE, PermissionFix};

    pub(super) fn ensure_dir(dir: &Path, fixes: &mut Vec<PermissionFix>) -> io::Result<()> {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => tighten(dir, meta.permissions().mode(), DIR_MODE, fixes),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)?;
                // The umask may have taken bits away from `mode`; put them back.
                fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
            }
            Err(err) => Err(err),
        }
    }

    pub(super) fn ensure_file(path: &Path, fixes: &mut Vec<PermissionFix>) -> io::Result<()> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
        {
            Ok(file) => file.set_permissions(Permissions::from_mode(FILE_MODE)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                tighten_if_present(path, FILE_MODE, fixes)
            }
            Err(err) => Err(err),
        }
    }

    pub(super) fn tighten_if_present(
        path: &Path,
        want: u32,
        fixes: &mut Vec<PermissionFix>,
    ) -> io::Result<()> {
        match fs::metadata(path) {
            Ok(meta) => tighten(path, meta.permissions().mode(), want, fixes),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Sets `want` if `mode` lets the group or others in. A mode that is already
    /// private (say `0500`, chosen by an operator) is left alone.
    fn tighten(
        path: &Path,
        mode: u32,
        want: u32,
        fixes: &mut Vec<PermissionFix>,
    ) -> io::Result<()> {
        let was = mode & 0o7777;
        if was & 0o077 == 0 {
            return Ok(());
        }
        match fs::set_permissions(path, Permissions::from_mode(want)) {
            Ok(()) => fixes.push(PermissionFix::Tightened {
                path: path.to_owned(),
                was,
                now: want,
            }),
            Err(error) => fixes.push(PermissionFix::LeftAsIs {
                path: path.to_owned(),
                mode: was,
                error,
            }),
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use std::io;
    use std::path::Path;

    use super::PermissionFix;

    pub(super) fn ensure_dir(dir: &Path, _fixes: &mut Vec<PermissionFix>) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    pub(super) fn ensure_file(_path: &Path, _fixes: &mut Vec<PermissionFix>) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn tighten_if_present(
        _path: &Path,
        _want: u32,
        _fixes: &mut Vec<PermissionFix>,
    ) -> io::Result<()> {
        Ok(())
    }
}
