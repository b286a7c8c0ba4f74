//! One file of a repository into the cache, as `huggingface_hub` downloads it: a HEAD of
//! `resolve/REVISION/PATH` for the commit, the ETag and the size (a large file answers with a
//! redirect to the CDN, which is not followed for the HEAD); then a GET from the CDN (without
//! the token) or from the Hub into `blobs/ETAG.incomplete`, resumed with a `Range` request
//! after a broken connection, checked against the size (and the SHA-256, for LFS files), moved
//! into place and linked from the snapshot.

use super::cache::{Cache, check_etag, is_commit_hash};
use super::client::{Client, encode_path, encode_segment, header};
use super::error::Access;
use super::{HubError, RepoId, Target};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_LENGTH, HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tries of one download, each resuming where the last stopped.
const ATTEMPTS: u32 = 5;
/// The wait before the second try; it doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// What the Hub says about one file.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// The commit the revision resolved to.
    pub commit: String,
    /// The content's ETag: the SHA-256 of an LFS file, the Git blob hash of another.
    pub etag: String,
    /// The content's size in bytes.
    pub size: u64,
    /// Where the content is fetched from (the CDN, for a redirected file).
    pub source: Url,
}

/// Asks the Hub about `path` at `revision`.
pub(crate) async fn metadata(
    client: &Client,
    repo: &RepoId,
    revision: &str,
    path: &str,
) -> Result<Remote, HubError> {
    let target = Target::repo(repo).at(revision).file(path);
    let url = client.url(
        &target,
        &format!(
            "/{}{}/resolve/{}/{}",
            repo.kind().url_prefix(),
            repo.id(),
            encode_segment(revision),
            encode_path(path)
        ),
    )?;
    let response = client
        .fetch(&target, Method::HEAD, url, &identity(), true)
        .await?;
    let status = response.status();
    if !(status.is_success() || status.is_redirection()) {
        return Err(client.status_error(&target, response, Access::Read).await);
    }
    let commit = header(&response, "x-repo-commit")
        .filter(|commit| is_commit_hash(commit))
        .ok_or_else(|| {
            HubError::protocol(&target, "no commit hash (X-Repo-Commit) in the answer")
        })?;
    let etag = header(&response, "x-linked-etag")
        .or_else(|| header(&response, "etag"))
        .map(|etag| etag.trim_start_matches("W/").trim_matches('"').to_owned())
        .ok_or_else(|| HubError::protocol(&target, "no ETag in the answer"))?;
    check_etag(&etag).map_err(|message| HubError::protocol(&target, message))?;
    let size = header(&response, "x-linked-size")
        .or_else(|| header(&response, CONTENT_LENGTH.as_str()))
        .and_then(|size| size.parse::<u64>().ok())
        .ok_or_else(|| HubError::protocol(&target, "no file size in the answer"))?;
    let source = match header(&response, "location").filter(|_| status.is_redirection()) {
        Some(location) => response
            .url()
            .join(&location)
            .map_err(|e| HubError::protocol(&target, format!("a redirect to {location:?}: {e}")))?,
        None => response.url().clone(),
    };
    Ok(Remote {
        commit,
        etag,
        size,
        source,
    })
}

/// Downloads `path` at `revision` into the cache unless it is there; returns the commit and
/// the file's path in the snapshot.
pub(crate) async fn download(
    client: &Client,
    cache: &Cache,
    repo: &RepoId,
    revision: &str,
    path: &str,
) -> Result<(String, PathBuf), HubError> {
    let remote = metadata(client, repo, revision, path).await?;
    let target = Target::repo(repo).at(&remote.commit).file(path);
    let pointer = cache.snapshot_file(repo, &remote.commit, path);
    if size_of(&pointer) == Some(remote.size) {
        return Ok((remote.commit, pointer));
    }
    let blob = cache.blob(repo, &remote.etag);
    if size_of(&blob) != Some(remote.size) {
        let _lock = cache.lock(repo, &remote.etag).await?;
        if size_of(&blob) != Some(remote.size) {
            fetch_blob(client, &target, &remote, &blob).await?;
        }
    }
    let linked = cache.link(repo, &remote.commit, path, &remote.etag)?;
    Ok((remote.commit, linked))
}

fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|metadata| metadata.len())
}

fn identity() -> HeaderMap {
    // The size and ETag are those of the stored bytes; a compressed transfer would change both.
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    headers
}

/// One try's failure: worth another try (a broken connection, a server error), or not.
enum Failure {
    Again(HubError),
    Final(HubError),
}

/// Downloads the blob through its `.incomplete` file, resuming across tries and runs.
async fn fetch_blob(
    client: &Client,
    target: &Target,
    remote: &Remote,
    blob: &Path,
) -> Result<(), HubError> {
    let mut partial = blob.as_os_str().to_owned();
    partial.push(".incomplete");
    let partial = PathBuf::from(partial);
    if let Some(folder) = partial.parent() {
        std::fs::create_dir_all(folder).map_err(|e| HubError::io(folder, e))?;
    }
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match fetch_once(client, target, remote, &partial).await {
            Ok(()) => break,
            Err(Failure::Again(error)) if attempt < ATTEMPTS => {
                drop(error);
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(Failure::Again(error) | Failure::Final(error)) => return Err(error),
        }
    }
    if let Err(message) = verify(&partial, remote) {
        let _ = std::fs::remove_file(&partial);
        return Err(HubError::Corrupt {
            target: target.clone(),
            message,
        });
    }
    std::fs::rename(&partial, blob).map_err(|e| HubError::io(blob, e))
}

/// One GET, appended to what the `.incomplete` file already holds.
async fn fetch_once(
    client: &Client,
    target: &Target,
    remote: &Remote,
    partial: &Path,
) -> Result<(), Failure> {
    let io = |error| Failure::Final(HubError::io(partial, error));
    let mut have = size_of(partial).unwrap_or(0);
    if have > remote.size {
        have = 0;
    }
    if have == remote.size && have > 0 {
        return Ok(());
    }
    let mut headers = identity();
    if have > 0 {
        let range = HeaderValue::from_str(&format!("bytes={have}-")).expect("a range is ASCII");
        headers.insert(RANGE, range);
    }
    let response = client
        .fetch(target, Method::GET, remote.source.clone(), &headers, false)
        .await
        .map_err(Failure::Again)?;
    let start = match response.status() {
        StatusCode::PARTIAL_CONTENT if range_start(&response) == Some(have) => have,
        StatusCode::OK => 0,
        StatusCode::RANGE_NOT_SATISFIABLE => {
            std::fs::write(partial, b"").map_err(io)?;
            return Err(Failure::Again(HubError::protocol(
                target,
                "the range was refused",
            )));
        }
        status => {
            let again = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            let error = client.status_error(target, response, Access::Read).await;
            return Err(if again {
                Failure::Again(error)
            } else {
                Failure::Final(error)
            });
        }
    };
    let written = write_body(client, target, remote, response, partial, start).await?;
    if written < remote.size {
        return Err(Failure::Again(HubError::protocol(
            target,
            "the download ended early",
        )));
    }
    Ok(())
}

/// Writes an answer's body into the `.incomplete` file from `start`; returns where it ended.
async fn write_body(
    client: &Client,
    target: &Target,
    remote: &Remote,
    mut response: reqwest::Response,
    partial: &Path,
    start: u64,
) -> Result<u64, Failure> {
    let io = |error| Failure::Final(HubError::io(partial, error));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(partial)
        .map_err(io)?;
    file.set_len(start).map_err(io)?;
    let mut file = std::io::BufWriter::new(file);
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start)).map_err(io)?;
    let mut written = start;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                written += chunk.len() as u64;
                if written > remote.size {
                    let message = format!(
                        "the download is longer than the {} bytes the Hub announced",
                        remote.size
                    );
                    return Err(Failure::Final(HubError::Corrupt {
                        target: target.clone(),
                        message,
                    }));
                }
                file.write_all(&chunk).map_err(io)?;
            }
            Ok(None) => break,
            Err(error) => {
                // What arrived is kept: the next try asks for the rest.
                file.flush().map_err(io)?;
                let url = super::client::shown(&remote.source);
                return Err(Failure::Again(client.network(target, &url, error)));
            }
        }
    }
    file.flush().map_err(io)?;
    file.get_ref().sync_all().map_err(io)?;
    Ok(written)
}

/// Where a 206 answer's `Content-Range: bytes START-END/SIZE` starts.
fn range_start(response: &reqwest::Response) -> Option<u64> {
    let range = header(response, "content-range")?;
    let (start, _) = range.strip_prefix("bytes ")?.split_once('-')?;
    start.trim().parse().ok()
}

/// Checks the size, and the SHA-256 when the ETag is one (LFS files).
fn verify(partial: &Path, remote: &Remote) -> Result<(), String> {
    let size = size_of(partial).unwrap_or(0);
    if size != remote.size {
        return Err(format!(
            "downloaded {size} bytes, the Hub announced {}",
            remote.size
        ));
    }
    let is_sha256 = remote.etag.len() == 64 && remote.etag.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_sha256 {
        return Ok(());
    }
    let digest = sha256_file(partial).map_err(|e| e.to_string())?;
    if !digest.eq_ignore_ascii_case(&remote.etag) {
        return Err(format!(
            "the download's SHA-256 is {digest}, the Hub announced {}",
            remote.etag
        ));
    }
    Ok(())
}

/// The SHA-256 of a file, as lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
