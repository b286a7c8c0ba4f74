//! The Hugging Face cache, laid out as `huggingface_hub` lays it out, so that either side reuses
//! what the other downloaded:
//!
//! ```text
//! CACHE/datasets--ORG--NAME/refs/main               the commit `main` was at when last seen
//! CACHE/datasets--ORG--NAME/blobs/ETAG              a file's content, named by its ETag
//! CACHE/datasets--ORG--NAME/snapshots/COMMIT/PATH   a relative symbolic link into blobs/
//! CACHE/.locks/datasets--ORG--NAME/ETAG.lock        held while that blob is downloaded
//! ```
//!
//! A blob being downloaded is `blobs/ETAG.incomplete`, which both clients resume.

use super::{HubError, RepoId};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a held download lock is tried again.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// A cache folder.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    root: PathBuf,
}

/// Whether `text` is a full commit hash.
pub(crate) fn is_commit_hash(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks an ETag before it names a file: hex digests in practice, never a path.
pub(crate) fn check_etag(etag: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_".contains(c);
    if etag.is_empty() || etag.len() > 128 || !etag.chars().all(allowed) {
        return Err(format!("the ETag {etag:?} cannot name a cache file"));
    }
    Ok(())
}

impl Cache {
    /// The cache at `root`.
    pub(crate) fn new(root: &Path) -> Self {
        Cache {
            root: root.to_path_buf(),
        }
    }

    /// The cache folder.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn repo_folder(&self, repo: &RepoId) -> PathBuf {
        self.root.join(repo.cache_folder())
    }

    /// The commit `revision` stands for in the cache: the revision itself when it is a commit
    /// hash with a snapshot, else what `refs/REVISION` holds.
    pub(crate) fn commit(&self, repo: &RepoId, revision: &str) -> Option<String> {
        let folder = self.repo_folder(repo);
        if is_commit_hash(revision) && folder.join("snapshots").join(revision).is_dir() {
            return Some(revision.to_owned());
        }
        let text = std::fs::read_to_string(folder.join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_commit_hash(commit).then(|| commit.to_owned())
    }

    /// Records that `revision` is at `commit` (nothing to record for a commit hash).
    pub(crate) fn set_commit(
        &self,
        repo: &RepoId,
        revision: &str,
        commit: &str,
    ) -> Result<(), HubError> {
        if revision == commit {
            return Ok(());
        }
        let path = self.repo_folder(repo).join("refs").join(revision);
        if std::fs::read_to_string(&path).is_ok_and(|text| text.trim() == commit) {
            return Ok(());
        }
        let folder = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&folder).map_err(|e| HubError::io(&folder, e))?;
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, commit).map_err(|e| HubError::io(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| HubError::io(&path, e))
    }

    /// Where `path` of `commit` lives in the snapshot.
    pub(crate) fn snapshot_file(&self, repo: &RepoId, commit: &str, path: &str) -> PathBuf {
        let mut file = self.repo_folder(repo).join("snapshots").join(commit);
        file.extend(path.split('/'));
        file
    }

    /// `path` of `commit`, when the cache holds it.
    pub(crate) fn cached(&self, repo: &RepoId, commit: &str, path: &str) -> Option<PathBuf> {
        let file = self.snapshot_file(repo, commit, path);
        file.is_file().then_some(file)
    }

    /// The paths the cache holds for `commit`, sorted (a snapshot holds only what was
    /// downloaded, not necessarily the whole repository).
    pub(crate) fn snapshot_paths(&self, repo: &RepoId, commit: &str) -> Vec<String> {
        let root = self.repo_folder(repo).join("snapshots").join(commit);
        let mut paths = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.is_file()
                    && let Ok(relative) = path.strip_prefix(&root)
                {
                    let parts: Vec<String> = relative
                        .components()
                        .map(|part| part.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    paths.push(parts.join("/"));
                }
            }
        }
        paths.sort();
        paths
    }

    /// The blob named `etag`.
    pub(crate) fn blob(&self, repo: &RepoId, etag: &str) -> PathBuf {
        self.repo_folder(repo).join("blobs").join(etag)
    }

    /// Links `path` of `commit` to the blob `etag`, replacing whatever was there.
    pub(crate) fn link(
        &self,
        repo: &RepoId,
        commit: &str,
        path: &str,
        etag: &str,
    ) -> Result<PathBuf, HubError> {
        let pointer = self.snapshot_file(repo, commit, path);
        let folder = pointer.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&folder).map_err(|e| HubError::io(&folder, e))?;
        match std::fs::remove_file(&pointer) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(HubError::io(&pointer, error)),
        }
        // From snapshots/COMMIT/a/b/FILE, blobs/ is as many levels up as PATH has parts, plus
        // one: the relative link survives the cache folder being moved.
        let mut target = PathBuf::new();
        for _ in 0..=path.split('/').count() {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        place(&target, &self.blob(repo, etag), &pointer)?;
        Ok(pointer)
    }

    /// Takes the download lock of blob `etag`, waiting while another process holds it.
    pub(crate) async fn lock(&self, repo: &RepoId, etag: &str) -> Result<File, HubError> {
        let folder = self.root.join(".locks").join(repo.cache_folder());
        std::fs::create_dir_all(&folder).map_err(|e| HubError::io(&folder, e))?;
        let path = folder.join(format!("{etag}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| HubError::io(&path, e))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) => tokio::time::sleep(LOCK_POLL).await,
                Err(TryLockError::Error(error)) => return Err(HubError::io(&path, error)),
            }
        }
    }
}

#[cfg(unix)]
fn place(relative: &Path, _blob: &Path, pointer: &Path) -> Result<(), HubError> {
    std::os::unix::fs::symlink(relative, pointer).map_err(|e| HubError::io(pointer, e))
}

/// Without symbolic links the snapshot holds a copy, as `huggingface_hub` does there.
#[cfg(not(unix))]
fn place(_relative: &Path, blob: &Path, pointer: &Path) -> Result<(), HubError> {
    std::fs::copy(blob, pointer)
        .map(drop)
        .map_err(|e| HubError::io(pointer, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::RepoKind;

    #[test]
    fn refs_snapshots_and_links_follow_the_huggingface_hub_layout() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::new(folder.path());
        let repo = RepoId::new(RepoKind::Dataset, "org/name").unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(cache.commit(&repo, "main"), None);
        cache.set_commit(&repo, "main", commit).unwrap();
        cache
            .set_commit(&repo, "refs/convert/parquet", commit)
            .unwrap();
        let refs = folder.path().join("datasets--org--name/refs");
        assert_eq!(std::fs::read_to_string(refs.join("main")).unwrap(), commit);
        assert!(refs.join("refs/convert/parquet").is_file());
        assert_eq!(cache.commit(&repo, "main").as_deref(), Some(commit));

        let blob = cache.blob(&repo, "abc123");
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, "content").unwrap();
        let linked = cache
            .link(&repo, commit, "data/train.jsonl", "abc123")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&linked).unwrap(), "content");
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(&linked).unwrap(),
            Path::new("../../../blobs/abc123")
        );
        cache.link(&repo, commit, "README.md", "abc123").unwrap();
        assert_eq!(
            cache.snapshot_paths(&repo, commit),
            ["README.md", "data/train.jsonl"]
        );
        assert_eq!(cache.commit(&repo, commit).as_deref(), Some(commit));
        assert!(cache.cached(&repo, commit, "data/train.jsonl").is_some());
        assert!(cache.cached(&repo, commit, "data/test.jsonl").is_none());
    }

    #[test]
    fn a_ref_that_is_not_a_commit_hash_is_ignored() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::new(folder.path());
        let repo = RepoId::new(RepoKind::Model, "org/name").unwrap();
        let refs = folder.path().join("models--org--name/refs");
        std::fs::create_dir_all(&refs).unwrap();
        std::fs::write(refs.join("main"), "../../etc").unwrap();
        assert_eq!(cache.commit(&repo, "main"), None);
        assert!(check_etag("../x").is_err());
        assert!(check_etag("0a1b").is_ok());
    }
}
