//! Files written whole or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to a fresh file beside `path` and renames it over `path`: the rename is atomic
/// within a folder, so readers see the old file or the complete new one, never a partial one.
/// The temporary name (`.NAME.PID-N.tmp`) is unique to the process and the call, so runs that
/// share a folder (shards) never write or rename each other's files.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Several plots may be written at once from one process; the counter keeps their names apart.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    loop {
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = folder.join(temp_name);
        let file = match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => file,
            // A leftover from a crashed process with the same id: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = fill_and_rename(file, bytes, &temp, path);
        if written.is_err() {
            // Best effort: the write already failed, and that error is the one worth reporting.
            let _ = fs::remove_file(&temp);
        }
        return written;
    }
}

fn fill_and_rename(mut file: File, bytes: &[u8], temp: &Path, path: &Path) -> io::Result<()> {
    file.write_all(bytes)?;
    // Flushed before the rename, so that a crash cannot leave the final name on an empty file.
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)
}
