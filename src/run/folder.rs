//! The output folder: one run at a time, and nothing in `data/` that the card does not name.

use super::RunError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the output folder.
const LOCK: &str = ".rejudge.lock";

/// An exclusive lock on an output folder, released when dropped or when the process dies (the
/// operating system drops `flock` locks with their process, so a killed run never blocks the
/// next).
#[derive(Debug)]
pub(super) struct Lock {
    _file: File,
}

/// Locks `folder` (creating it) for this run, or says which process holds it. Shards lock
/// their own part of the folder, so that they can share it.
pub(super) fn lock(folder: &Path, shard: Option<super::Shard>) -> Result<Lock, RunError> {
    fs_err::create_dir_all(folder).map_err(RunError::Folder)?;
    let path = match shard {
        Some(shard) => folder.join(format!(".rejudge-{}.lock", shard.label())),
        None => folder.join(LOCK),
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| RunError::Folder(fs_err_io(&path, &e)))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(RunError::Busy {
                folder: folder.to_path_buf(),
                pid: holder.trim().to_owned(),
            });
        }
        Err(TryLockError::Error(error)) => return Err(RunError::Folder(fs_err_io(&path, &error))),
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()));
    written.map_err(|e| RunError::Folder(fs_err_io(&path, &e)))?;
    Ok(Lock { _file: file })
}

fn fs_err_io(path: &Path, error: &std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Files an earlier run wrote that this run replaces: removed once it has finished.
#[derive(Debug, Default)]
pub(super) struct Tidy {
    replaced: Vec<PathBuf>,
}

/// Checks `folder/data/` before any work: files an earlier rejudge run wrote (named in its
/// `report.json`, or left half-written by one) are ours to replace; anything else would be
/// loaded by `datasets` beside the re-ranked rows, so the run refuses to start.
pub(super) fn inspect(
    folder: &Path,
    target: &Path,
    shard: Option<super::Shard>,
) -> Result<Tidy, RunError> {
    if shard.is_none() {
        // A shard's neighbours may be writing their report files right now.
        remove_partials(folder)?;
    }
    let data = folder.join("data");
    if !data.is_dir() {
        return Ok(Tidy::default());
    }
    let known = earlier_files(folder);
    let mut replaced = Vec::new();
    let mut foreign = Vec::new();
    for entry in fs_err::read_dir(&data).map_err(RunError::Folder)? {
        let path = entry.map_err(RunError::Folder)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') && name.ends_with(".partial") {
            // Another shard's file in the making is not ours to remove.
            if shard.is_none() {
                fs_err::remove_file(&path).map_err(RunError::Folder)?;
            }
        } else if path == target || shard.is_some_and(|s| is_sibling(&name, s)) {
        } else if known.contains(&path) {
            replaced.push(path);
        } else {
            foreign.push(name);
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        return Err(RunError::ForeignFiles {
            folder: data,
            files: foreign.join(", "),
        });
    }
    Ok(Tidy { replaced })
}

/// Whether `name` is the data file of another shard of the same count.
fn is_sibling(name: &str, shard: super::Shard) -> bool {
    let suffix = format!("-of-{:05}", shard.count);
    name.strip_prefix("train-")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(numbers, _)| numbers.len() == 5 + suffix.len() && numbers.ends_with(&suffix))
}

impl Tidy {
    /// Removes what the finished run replaced.
    pub(super) fn finish(self) -> Result<(), RunError> {
        for path in self.replaced {
            fs_err::remove_file(&path).map_err(RunError::Folder)?;
        }
        Ok(())
    }
}

/// The data files the last finished run in `folder` wrote, from its report.
fn earlier_files(folder: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(folder.join("report.json")) else {
        return Vec::new();
    };
    let Ok(report) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let listed = report["files"].as_array().into_iter().flatten();
    let mut files: Vec<PathBuf> = listed
        .filter_map(serde_json::Value::as_str)
        .map(|name| folder.join(name))
        .collect();
    // Reports written before `files` existed name their one data file in `output`.
    if let Some(name) = report["output"]
        .as_str()
        .and_then(|o| Path::new(o).file_name())
    {
        files.push(folder.join("data").join(name));
    }
    files
}

/// Half-written report files and plots of an interrupted run: the `.NAME.PID-N.tmp` siblings
/// that every one of them is written through.
fn remove_partials(folder: &Path) -> Result<(), RunError> {
    for place in [folder.to_path_buf(), folder.join("plots")] {
        if !place.is_dir() {
            continue;
        }
        for entry in fs_err::read_dir(&place).map_err(RunError::Folder)? {
            let path = entry.map_err(RunError::Folder)?.path();
            let hidden = path
                .file_name()
                .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."));
            // Exactly the spelling `atomic::write` uses: nothing else is ours to remove.
            let ours = hidden && path.extension().is_some_and(|ext| ext == "tmp");
            if ours && path.is_file() {
                fs_err::remove_file(&path).map_err(RunError::Folder)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let folder = tempfile::tempdir().unwrap();
        let held = lock(folder.path(), None).unwrap();
        let error = lock(folder.path(), None).unwrap_err().to_string();
        assert!(
            error.contains(&format!("(pid {})", std::process::id())),
            "{error}"
        );
        drop(held);
        lock(folder.path(), None).expect("released on drop");
        let shard = super::super::Shard::new(1, 4).unwrap();
        let _one = lock(folder.path(), Some(shard)).expect("a shard locks its own part");
        assert!(lock(folder.path(), Some(shard)).is_err());
        assert!(is_sibling("train-00003-of-00004.parquet", shard));
        assert!(!is_sibling("train-00003-of-00005.parquet", shard));
    }

    #[test]
    fn foreign_files_are_refused_and_earlier_ones_replaced() {
        let folder = tempfile::tempdir().unwrap();
        let data = folder.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("train.jsonl"), "{}\n").unwrap();
        std::fs::write(data.join(".train-00000-of-00001.parquet.partial"), "x").unwrap();
        let report = serde_json::json!({"files": ["data/train.jsonl"]});
        std::fs::write(folder.path().join("report.json"), report.to_string()).unwrap();
        let target = data.join("train-00000-of-00001.parquet");
        let tidy = inspect(folder.path(), &target, None).unwrap();
        assert_eq!(tidy.replaced, vec![data.join("train.jsonl")]);
        assert!(!data.join(".train-00000-of-00001.parquet.partial").exists());
        std::fs::write(data.join("mine.csv"), "a,b\n").unwrap();
        let error = inspect(folder.path(), &target, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mine.csv") && error.contains("hint:"),
            "{error}"
        );
    }

    #[test]
    fn only_an_unsharded_run_removes_half_written_report_files() {
        let folder = tempfile::tempdir().unwrap();
        let half_written = folder.path().join(".rejudge.toml.4242-0.tmp");
        std::fs::write(&half_written, "x").unwrap();
        let target = folder
            .path()
            .join("data")
            .join("train-00001-of-00004.jsonl");
        let shard = super::super::Shard::new(1, 4).unwrap();
        inspect(folder.path(), &target, Some(shard)).unwrap();
        assert!(half_written.exists(), "another shard may be writing it");
        inspect(folder.path(), &target, None).unwrap();
        assert!(!half_written.exists());
    }
}
