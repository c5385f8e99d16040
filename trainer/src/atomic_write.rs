//! Files written whole or not at all: every model, checkpoint, record and report the trainer
//! writes goes to a temporary file in the same folder, is flushed to disk, and is renamed over
//! the destination. A run killed mid-write (or a writer that fails) leaves the previous file
//! as it was, plus at most a `.NAME.*.tmp` file that the next write does not mind.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// A file that could not be written; the destination is unchanged.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct AtomicWriteError {
    /// The destination.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

/// Writes `path` with `write`, atomically: on any error (from `write` or the file system)
/// the destination keeps its previous content.
pub fn write_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    write_inner(path, write).map_err(|source| AtomicWriteError {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_with(path, |out| out.write_all(bytes))
}

fn write_inner(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    // Hidden and named after the destination, so a leftover from a killed run is recognisable.
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(folder)?;
    {
        let mut out = BufWriter::new(temporary.as_file_mut());
        write(&mut out)?;
        out.flush()?;
    }
    temporary.as_file().sync_all()?;
    keep_permissions_of_a_plain_file(&temporary)?;
    temporary.persist(path).map_err(|error| error.error)?;
    sync_folder(folder)
}

/// `tempfile` creates files readable by their owner only; a model or report is an ordinary
/// file, readable as `File::create` would have made it.
#[cfg(unix)]
fn keep_permissions_of_a_plain_file(file: &NamedTempFile) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn keep_permissions_of_a_plain_file(_: &NamedTempFile) -> io::Result<()> {
    Ok(())
}

/// Makes the rename itself durable (POSIX: a rename is recorded in the folder's entry).
#[cfg(unix)]
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

#[cfg(not(unix))]
fn sync_folder(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flowgate-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("lists")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_that_fails_midway_leaves_the_previous_file_and_no_temporary() {
        let dir = scratch("fails");
        let path = dir.join("model.fgm");
        write_bytes(&path, b"the previous good model").expect("writes");
        let error = write_with(&path, |out| {
            out.write_all(b"half of a new mo")?;
            Err(io::Error::other("the disk is full"))
        })
        .expect_err("the writer failed");
        assert!(error.to_string().contains("model.fgm"), "{error}");
        assert!(error.to_string().contains("the disk is full"), "{error}");
        assert_eq!(
            std::fs::read(&path).expect("reads"),
            b"the previous good model"
        );
        assert_eq!(entries(&dir), ["model.fgm"]);
        std::fs::remove_dir_all(dir).expect("cleans up");
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_creates_new_ones() {
        let dir = scratch("replaces");
        let path = dir.join("scores.csv");
        write_bytes(&path, b"a long first version of the file").expect("writes");
        write_bytes(&path, b"short").expect("rewrites");
        assert_eq!(std::fs::read(&path).expect("reads"), b"short");
        assert_eq!(entries(&dir), ["scores.csv"]);
        let missing = dir.join("no-such-folder").join("x.csv");
        let error = write_bytes(&missing, b"x").expect_err("no folder");
        assert!(error.to_string().contains("x.csv"), "{error}");
        std::fs::remove_dir_all(dir).expect("cleans up");
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_readable_like_plain_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("report.json");
        write_bytes(&path, b"{}").expect("writes");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        std::fs::remove_dir_all(dir).expect("cleans up");
    }
}
