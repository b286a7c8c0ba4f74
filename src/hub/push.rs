//! An output folder pushed to a dataset repository in one commit, through the Hub's commit
//! API, as `huggingface_hub`'s `upload_folder` does it without Xet:
//!
//! 1. the repository is created when missing (private when asked), and so is the branch;
//! 2. `preupload` says which files go through LFS, and gives the hash of each file the branch
//!    already has: unchanged files are left out;
//! 3. the LFS objects the Hub lacks are uploaded (see the `lfs` module);
//! 4. one commit adds the small files inline and the large ones by their SHA-256, and deletes
//!    the branch's `data/` files the folder no longer has (the card's `data/train*` pattern
//!    would read them with the new ones).

use super::client::{Client, encode_segment};
use super::dataset::tree;
use super::download::hex;
use super::error::Access;
use super::lfs::{self, Object};
use super::{HubError, HubOptions, RepoId, Target};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files announced in one preupload request, as `huggingface_hub` does.
const PREUPLOAD_BATCH: usize = 256;
/// The bytes of each file the Hub sees to decide between LFS and inline.
const SAMPLE: usize = 512;
/// The top-level files of an output folder that are pushed when present.
const TOP_FILES: [&str; 6] = [
    "README.md",
    "report.json",
    "rejudge.toml",
    "review.html",
    "eval.json",
    "calibration.json",
];
/// Where the journal goes in the repository.
const JOURNAL: &str = "journal.sqlite";

/// What to push where.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The output folder.
    pub folder: PathBuf,
    /// The dataset repository.
    pub repo: RepoId,
    /// Create it as private, and refuse to push to it when it exists and is public.
    pub private: bool,
    /// The branch; `main` when `None`. Created from `main` when missing.
    pub branch: Option<String>,
    /// The journal to push as `journal.sqlite`, when it is to be pushed.
    pub journal: Option<PathBuf>,
    /// The commit's summary line.
    pub message: String,
}

/// One file of the folder and its path in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    /// The path in the repository.
    pub path: String,
    /// The file on disk.
    pub local: PathBuf,
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushOutcome {
    /// The repository's page.
    pub url: String,
    /// The new commit; `None` when the branch already held every file as it is.
    pub commit: Option<String>,
    /// Files the commit added or changed.
    pub changed: Vec<String>,
    /// Files the branch already had as they are.
    pub unchanged: Vec<String>,
    /// `data/` files the commit deleted.
    pub deleted: Vec<String>,
    /// LFS objects uploaded now.
    pub lfs_uploaded: usize,
    /// LFS objects the Hub already had (from an earlier, interrupted push, say).
    pub lfs_present: usize,
}

/// The files of an output folder that a push sends: `data/`, the card, the report, the
/// settings, the plots (`*.png`), `review.html`, `eval.json` and `calibration.json` when
/// present, and the journal only when one is given.
pub fn folder_files(folder: &Path, journal: Option<&Path>) -> Result<Vec<FolderFile>, HubError> {
    let not_output = |problem: String| HubError::Folder {
        folder: folder.to_path_buf(),
        problem,
        hint: "push the output folder of a finished rejudge run (it has report.json or eval.json)"
            .into(),
    };
    if !folder.is_dir() {
        return Err(not_output("no such folder".into()));
    }
    if !folder.join("report.json").is_file() && !folder.join("eval.json").is_file() {
        return Err(not_output(
            "not the output of a finished run: no report.json or eval.json".into(),
        ));
    }
    let mut files = Vec::new();
    data_files(&folder.join("data"), "data", &mut files)?;
    let listing = std::fs::read_dir(folder).map_err(|e| HubError::io(folder, e))?;
    for entry in listing {
        let path = entry.map_err(|e| HubError::io(folder, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let plot = Path::new(name)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("png"));
        let wanted = TOP_FILES.contains(&name) || (plot && !name.starts_with('.'));
        if wanted && path.is_file() {
            files.push(FolderFile {
                path: name.to_owned(),
                local: path.clone(),
            });
        }
    }
    if let Some(journal) = journal {
        files.push(journal_file(folder, journal)?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn data_files(folder: &Path, prefix: &str, files: &mut Vec<FolderFile>) -> Result<(), HubError> {
    let Ok(listing) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in listing {
        let path = entry.map_err(|e| HubError::io(folder, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Hidden names are half-written files (`.NAME.PID-N.tmp`) and the like.
        if name.starts_with('.') {
            continue;
        }
        let inside = format!("{prefix}/{name}");
        if path.is_dir() {
            data_files(&path, &inside, files)?;
        } else if path.is_file() {
            files.push(FolderFile {
                path: inside,
                local: path,
            });
        }
    }
    Ok(())
}

fn journal_file(folder: &Path, journal: &Path) -> Result<FolderFile, HubError> {
    let problem = |problem: String, hint: &str| HubError::Folder {
        folder: folder.to_path_buf(),
        problem,
        hint: hint.into(),
    };
    if !journal.is_file() {
        return Err(problem(
            format!("no journal at {}", journal.display()),
            "push without --push-journal, or name the journal the run used with --journal",
        ));
    }
    let mut wal = journal.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0) {
        return Err(problem(
            format!(
                "the journal {} has writes not yet folded into it (a -wal file): a run is using it, or was killed",
                journal.display()
            ),
            "let the run finish (or run the same command again to finish it), then push",
        ));
    }
    Ok(FolderFile {
        path: JOURNAL.into(),
        local: journal.to_path_buf(),
    })
}

/// A file with what the Hub is told about it.
struct Prepared {
    file: FolderFile,
    size: u64,
    sha256: String,
    /// The Git blob hash, which the Hub gives for files stored inline.
    git_oid: String,
    sample: Vec<u8>,
}

fn prepare(file: FolderFile) -> Result<Prepared, HubError> {
    let io = |e| HubError::io(&file.local, e);
    let size = std::fs::metadata(&file.local).map_err(io)?.len();
    let mut source = std::fs::File::open(&file.local).map_err(io)?;
    let mut sha256 = Sha256::new();
    let mut git = Sha1::new();
    git.update(format!("blob {size}\0").as_bytes());
    let mut sample = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = source.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        let bytes = &buffer[..read];
        if sample.len() < SAMPLE {
            let take = (SAMPLE - sample.len()).min(read);
            sample.extend_from_slice(&bytes[..take]);
        }
        sha256.update(bytes);
        git.update(bytes);
    }
    Ok(Prepared {
        size,
        sha256: hex(&sha256.finalize()),
        git_oid: hex(&git.finalize()),
        sample,
        file,
    })
}

/// Pushes the folder as one commit.
pub async fn push(options: &HubOptions, request: &PushRequest) -> Result<PushOutcome, HubError> {
    let repo = &request.repo;
    let branch = request.branch.as_deref().unwrap_or("main");
    let target = Target::repo(repo).at(branch);
    if options.offline {
        return Err(HubError::Offline { target });
    }
    if options.token.is_none() {
        return Err(HubError::NoToken { target });
    }
    let prepared = folder_files(&request.folder, request.journal.as_deref())?
        .into_iter()
        .map(prepare)
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::new(options)?;
    ensure_repo(&client, repo, request.private).await?;
    if branch != "main" {
        ensure_branch(&client, repo, branch).await?;
    }
    let (modes, parent) = preupload(&client, repo, branch, &prepared).await?;
    let mut outcome = PushOutcome {
        url: page(options, repo, branch),
        ..PushOutcome::default()
    };
    let (mut lines, objects) = operations(&prepared, &modes, &mut outcome)?;
    for stale in stale_data(&client, repo, branch, &prepared).await? {
        lines.push(json!({"key": "deletedFile", "value": {"path": stale}}));
        outcome.deleted.push(stale);
    }
    if lines.is_empty() {
        return Ok(outcome);
    }
    let sent = lfs::upload(&client, repo, branch, &objects).await?;
    (outcome.lfs_uploaded, outcome.lfs_present) = (sent.uploaded, sent.present);
    let message = &request.message;
    let made = commit(&client, repo, branch, message, parent.as_deref(), &lines).await?;
    outcome.commit = Some(made);
    Ok(outcome)
}

/// The commit's lines for the files that changed, and the LFS objects among them; unchanged
/// files are only counted.
fn operations<'p>(
    prepared: &'p [Prepared],
    modes: &[Mode],
    outcome: &mut PushOutcome,
) -> Result<(Vec<serde_json::Value>, Vec<Object<'p>>), HubError> {
    let mut lines = Vec::new();
    let mut objects = Vec::new();
    for (file, mode) in prepared.iter().zip(modes) {
        let local_oid = if mode.lfs {
            &file.sha256
        } else {
            &file.git_oid
        };
        if mode.ignored || mode.remote_oid.as_deref() == Some(local_oid.as_str()) {
            outcome.unchanged.push(file.file.path.clone());
            continue;
        }
        outcome.changed.push(file.file.path.clone());
        if mode.lfs {
            objects.push(Object {
                path: &file.file.path,
                local: &file.file.local,
                sha256: &file.sha256,
                size: file.size,
            });
            lines.push(json!({"key": "lfsFile", "value": {"path": file.file.path, "algo": "sha256", "oid": file.sha256, "size": file.size}}));
        } else {
            let content =
                std::fs::read(&file.file.local).map_err(|e| HubError::io(&file.file.local, e))?;
            lines.push(json!({"key": "file", "value": {"path": file.file.path, "encoding": "base64", "content": crate::secrets::base64(&content)}}));
        }
    }
    Ok((lines, objects))
}

fn page(options: &HubOptions, repo: &RepoId, branch: &str) -> String {
    let base = format!(
        "{}/{}{}",
        options.endpoint(),
        repo.kind().url_prefix(),
        repo.id()
    );
    if branch == "main" {
        base
    } else {
        format!("{base}/tree/{}", encode_segment(branch))
    }
}

#[derive(Deserialize)]
struct RepoInfo {
    #[serde(default)]
    private: Option<bool>,
}

/// Creates the repository unless it exists; refuses a public one when `private` is asked.
async fn ensure_repo(client: &Client, repo: &RepoId, private: bool) -> Result<(), HubError> {
    let target = Target::repo(repo);
    let url = client.url(
        &target,
        &format!("/api/{}/{}", repo.kind().plural(), repo.id()),
    )?;
    let response = client
        .send(&target, client.request(Method::GET, url))
        .await?;
    if response.status().is_success() {
        let info: RepoInfo = client.json(&target, response).await?;
        if private && info.private == Some(false) {
            return Err(HubError::Public { target });
        }
        return Ok(());
    }
    if response.status() != reqwest::StatusCode::NOT_FOUND {
        return Err(client.status_error(&target, response, Access::Write).await);
    }
    let body = json!({"type": repo.kind().singular(), "name": repo.name(), "organization": repo.owner(), "private": private});
    let url = client.url(&target, "/api/repos/create")?;
    let response = client
        .send(&target, client.request(Method::POST, url).json(&body))
        .await?;
    // 409: created by someone else in the meantime, which is as good.
    if response.status() == reqwest::StatusCode::CONFLICT {
        return Ok(());
    }
    client
        .check(&target, response, Access::Write)
        .await
        .map(drop)
}

/// Creates the branch from `main` unless it exists.
async fn ensure_branch(client: &Client, repo: &RepoId, branch: &str) -> Result<(), HubError> {
    let target = Target::repo(repo).at(branch);
    let path = format!(
        "/api/{}/{}/branch/{}",
        repo.kind().plural(),
        repo.id(),
        encode_segment(branch)
    );
    let url = client.url(&target, &path)?;
    let response = client
        .send(&target, client.request(Method::POST, url).json(&json!({})))
        .await?;
    if response.status() == reqwest::StatusCode::CONFLICT {
        return Ok(());
    }
    client
        .check(&target, response, Access::Write)
        .await
        .map(drop)
}

/// What preupload says of one file.
#[derive(Debug, Clone, Default)]
struct Mode {
    lfs: bool,
    ignored: bool,
    remote_oid: Option<String>,
}

#[derive(Deserialize)]
struct PreuploadAnswer {
    #[serde(default)]
    files: Vec<PreuploadFile>,
    #[serde(rename = "commitOid", default)]
    commit: Option<String>,
}

#[derive(Deserialize)]
struct PreuploadFile {
    path: String,
    #[serde(rename = "uploadMode", default)]
    upload_mode: Option<String>,
    #[serde(rename = "shouldIgnore", default)]
    should_ignore: Option<bool>,
    #[serde(default)]
    oid: Option<String>,
}

/// Each file's mode, in the files' order, and the branch's head commit.
async fn preupload(
    client: &Client,
    repo: &RepoId,
    branch: &str,
    files: &[Prepared],
) -> Result<(Vec<Mode>, Option<String>), HubError> {
    let target = Target::repo(repo).at(branch);
    let path = format!(
        "/api/{}/{}/preupload/{}",
        repo.kind().plural(),
        repo.id(),
        encode_segment(branch)
    );
    let mut modes = Vec::with_capacity(files.len());
    let mut head = None;
    for chunk in files.chunks(PREUPLOAD_BATCH) {
        let announced: Vec<_> = chunk
            .iter()
            .map(|f| json!({"path": f.file.path, "size": f.size, "sample": crate::secrets::base64(&f.sample)}))
            .collect();
        let url = client.url(&target, &path)?;
        let request = client
            .request(Method::POST, url)
            .json(&json!({"files": announced}));
        let response = client.send(&target, request).await?;
        let response = client.check(&target, response, Access::Write).await?;
        let answer: PreuploadAnswer = client.json(&target, response).await?;
        head = head.or(answer.commit);
        for file in chunk {
            let said = answer
                .files
                .iter()
                .find(|a| a.path == file.file.path)
                .ok_or_else(|| {
                    HubError::protocol(
                        &target.file(&file.file.path),
                        "preupload left this file out",
                    )
                })?;
            modes.push(Mode {
                lfs: said.upload_mode.as_deref() == Some("lfs"),
                ignored: said.should_ignore.unwrap_or(false),
                remote_oid: said.oid.clone(),
            });
        }
    }
    Ok((modes, head))
}

/// The branch's `data/` files the folder does not have.
async fn stale_data(
    client: &Client,
    repo: &RepoId,
    branch: &str,
    files: &[Prepared],
) -> Result<Vec<String>, HubError> {
    let remote = match tree(client, repo, branch, Some("data")).await {
        Ok(remote) => remote,
        Err(error) if error.status() == Some(404) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    Ok(remote
        .into_iter()
        .filter(|path| path.starts_with("data/") && !files.iter().any(|f| &f.file.path == path))
        .collect())
}

#[derive(Deserialize)]
struct CommitAnswer {
    #[serde(rename = "commitOid")]
    commit: String,
}

async fn commit(
    client: &Client,
    repo: &RepoId,
    branch: &str,
    message: &str,
    parent: Option<&str>,
    lines: &[serde_json::Value],
) -> Result<String, HubError> {
    let target = Target::repo(repo).at(branch);
    let mut header = json!({"summary": message, "description": ""});
    if let Some(parent) = parent {
        header["parentCommit"] = json!(parent);
    }
    let mut body = json!({"key": "header", "value": header}).to_string();
    for line in lines {
        body.push('\n');
        body.push_str(&line.to_string());
    }
    body.push('\n');
    let path = format!(
        "/api/{}/{}/commit/{}",
        repo.kind().plural(),
        repo.id(),
        encode_segment(branch)
    );
    let url = client.url(&target, &path)?;
    let request = client
        .request(Method::POST, url)
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(body);
    // Sent once: a commit whose answer was lost may have happened, and the rerun's preupload
    // finds out.
    let response = client.send_once(&target, request).await?;
    let response = client.check(&target, response, Access::Write).await?;
    let answer: CommitAnswer = client.json(&target, response).await?;
    Ok(answer.commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_files_are_the_outputs_and_the_journal_only_when_asked() {
        let folder = tempfile::tempdir().unwrap();
        let root = folder.path();
        std::fs::create_dir_all(root.join("data")).unwrap();
        for name in [
            "data/train-00000-of-00001.parquet",
            "data/.train.parquet.partial",
            "README.md",
            "report.json",
            "rejudge.toml",
            "margins.png",
            "journal.sqlite",
            ".rejudge.lock",
            "notes.txt",
        ] {
            std::fs::write(root.join(name), name).unwrap();
        }
        let names = |files: Vec<FolderFile>| files.into_iter().map(|f| f.path).collect::<Vec<_>>();
        assert_eq!(
            names(folder_files(root, None).unwrap()),
            [
                "README.md",
                "data/train-00000-of-00001.parquet",
                "margins.png",
                "rejudge.toml",
                "report.json"
            ]
        );
        let with_journal = names(folder_files(root, Some(&root.join("journal.sqlite"))).unwrap());
        assert!(with_journal.contains(&"journal.sqlite".to_owned()));
        std::fs::write(root.join("journal.sqlite-wal"), "pending").unwrap();
        let busy = folder_files(root, Some(&root.join("journal.sqlite"))).unwrap_err();
        assert!(busy.to_string().contains("-wal"), "{busy}");

        std::fs::remove_file(root.join("report.json")).unwrap();
        let unfinished = folder_files(root, None).unwrap_err().to_string();
        assert!(unfinished.contains("no report.json"), "{unfinished}");
    }

    #[test]
    fn files_are_hashed_as_git_and_lfs_name_them() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("hello.txt");
        std::fs::write(&path, "hello\n").unwrap();
        let prepared = prepare(FolderFile {
            path: "hello.txt".into(),
            local: path,
        })
        .unwrap();
        // `git hash-object` and `sha256sum` of "hello\n".
        assert_eq!(prepared.git_oid, "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(
            prepared.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(
            (prepared.size, prepared.sample.as_slice()),
            (6, &b"hello\n"[..])
        );
    }
}
