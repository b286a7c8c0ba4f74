//! Large files through Git LFS, as the Hub speaks it to clients without Xet: the batch API
//! hands out an upload action for each object the Hub lacks (none for one it already has, so
//! a push that failed half-way sends only what is missing), then the object goes up in one PUT
//! (`basic`) or in parts (`multipart`, completed by a POST), and is verified.
//!
//! Upload URLs are pre-signed storage URLs: they get the headers the action names and never the
//! token.

use super::client::{Client, header};
use super::error::Access;
use super::{HubError, RepoId, Target};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The LFS media type.
const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// Objects asked about in one batch request, as `huggingface_hub` does.
const BATCH: usize = 256;

/// One object to upload: a file's SHA-256 and size.
#[derive(Debug, Clone)]
pub(crate) struct Object<'f> {
    pub path: &'f str,
    pub local: &'f Path,
    pub sha256: &'f str,
    pub size: u64,
}

/// What was done with the objects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Objects uploaded now.
    pub uploaded: usize,
    /// Objects the Hub already had.
    pub present: usize,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    transfer: Option<String>,
    #[serde(default)]
    objects: Vec<BatchObject>,
}

#[derive(Deserialize)]
struct BatchObject {
    oid: String,
    #[serde(default)]
    actions: Option<Actions>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Actions {
    #[serde(default)]
    upload: Option<Action>,
    #[serde(default)]
    verify: Option<Action>,
}

#[derive(Deserialize)]
struct Action {
    href: String,
    #[serde(default)]
    header: BTreeMap<String, Value>,
}

/// Uploads the objects the Hub lacks.
pub(crate) async fn upload(
    client: &Client,
    repo: &RepoId,
    branch: &str,
    objects: &[Object<'_>],
) -> Result<Sent, HubError> {
    let mut sent = Sent::default();
    for chunk in objects.chunks(BATCH) {
        let answer = batch(client, repo, branch, chunk).await?;
        let multipart = answer.transfer.as_deref() == Some("multipart");
        for object in chunk {
            let target = Target::repo(repo).at(branch).file(object.path);
            let answered = answer
                .objects
                .iter()
                .find(|a| a.oid == object.sha256)
                .ok_or_else(|| {
                    HubError::protocol(&target, "the LFS batch answer leaves this object out")
                })?;
            if let Some(error) = &answered.error {
                let message = client.excerpt(&error.to_string());
                return Err(HubError::protocol(
                    &target,
                    format!("the LFS batch refused the object: {message}"),
                ));
            }
            let Some(actions) = &answered.actions else {
                sent.present += 1;
                continue;
            };
            if let Some(action) = &actions.upload {
                if multipart {
                    send_parts(client, &target, object, action).await?;
                } else {
                    send_whole(client, &target, object, action).await?;
                }
                sent.uploaded += 1;
            } else {
                sent.present += 1;
            }
            if let Some(action) = &actions.verify {
                verify(client, &target, object, action).await?;
            }
        }
    }
    Ok(sent)
}

async fn batch(
    client: &Client,
    repo: &RepoId,
    branch: &str,
    objects: &[Object<'_>],
) -> Result<BatchAnswer, HubError> {
    let target = Target::repo(repo).at(branch);
    let path = format!(
        "/{}{}.git/info/lfs/objects/batch",
        repo.kind().url_prefix(),
        repo.id()
    );
    let body = json!({
        "operation": "upload",
        "transfers": ["basic", "multipart"],
        "objects": objects.iter().map(|o| json!({"oid": o.sha256, "size": o.size})).collect::<Vec<_>>(),
        "hash_algo": "sha256",
        "ref": {"name": branch},
    });
    let url = client.url(&target, &path)?;
    let request = client
        .request(Method::POST, url)
        .header(ACCEPT, LFS_JSON)
        .header(CONTENT_TYPE, LFS_JSON)
        .body(body.to_string());
    let response = client.send(&target, request).await?;
    let response = client.check(&target, response, Access::Write).await?;
    client.json(&target, response).await
}

/// The action's headers as HTTP headers (those that are text).
fn headers_of(action: &Action) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &action.header {
        let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) else {
            continue;
        };
        headers.insert(name, value);
    }
    headers
}

fn action_url(target: &Target, action: &Action) -> Result<reqwest::Url, HubError> {
    reqwest::Url::parse(&action.href)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| HubError::protocol(target, "an LFS action has no usable URL"))
}

fn read_range(target: &Target, local: &Path, start: u64, length: u64) -> Result<Vec<u8>, HubError> {
    let mut file = std::fs::File::open(local).map_err(|e| HubError::io(local, e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| HubError::io(local, e))?;
    let capacity = usize::try_from(length)
        .map_err(|_| HubError::protocol(target, "a part is too large for this machine"))?;
    let mut bytes = Vec::with_capacity(capacity);
    file.take(length)
        .read_to_end(&mut bytes)
        .map_err(|e| HubError::io(local, e))?;
    if bytes.len() as u64 != length {
        return Err(HubError::io(
            local,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file changed during the push",
            ),
        ));
    }
    Ok(bytes)
}

/// PUTs bytes to a storage URL with the action's headers and no token; returns the answer's
/// ETag.
async fn put(
    client: &Client,
    target: &Target,
    url: reqwest::Url,
    headers: HeaderMap,
    bytes: Vec<u8>,
) -> Result<Option<String>, HubError> {
    let request = client
        .request_without_token(Method::PUT, url)
        .headers(headers)
        .body(bytes);
    let response = client.send(target, request).await?;
    let response = client.check(target, response, Access::Write).await?;
    Ok(header(&response, "etag"))
}

async fn send_whole(
    client: &Client,
    target: &Target,
    object: &Object<'_>,
    action: &Action,
) -> Result<(), HubError> {
    let bytes = read_range(target, object.local, 0, object.size)?;
    put(
        client,
        target,
        action_url(target, action)?,
        headers_of(action),
        bytes,
    )
    .await?;
    Ok(())
}

/// A multipart upload: the action's header names the part size (`chunk_size`) and each part's
/// URL (under its number); the parts' ETags complete the upload.
async fn send_parts(
    client: &Client,
    target: &Target,
    object: &Object<'_>,
    action: &Action,
) -> Result<(), HubError> {
    let chunk = action
        .header
        .get("chunk_size")
        .and_then(|size| size.as_u64().or_else(|| size.as_str()?.parse().ok()))
        .filter(|size| *size > 0)
        .ok_or_else(|| HubError::protocol(target, "a multipart upload without a chunk_size"))?;
    let mut parts: Vec<(u64, &str)> = action
        .header
        .iter()
        .filter_map(|(name, url)| Some((name.parse::<u64>().ok()?, url.as_str()?)))
        .collect();
    parts.sort_unstable();
    if parts.is_empty()
        || parts
            .iter()
            .enumerate()
            .any(|(at, (number, _))| *number != at as u64 + 1)
    {
        return Err(HubError::protocol(
            target,
            "a multipart upload whose parts are not numbered 1, 2, ...",
        ));
    }
    let mut etags = Vec::with_capacity(parts.len());
    for (number, href) in &parts {
        let start = (number - 1).saturating_mul(chunk);
        let length = chunk.min(object.size.saturating_sub(start));
        let url = action_url(
            target,
            &Action {
                href: (*href).to_owned(),
                header: BTreeMap::new(),
            },
        )?;
        let bytes = read_range(target, object.local, start, length)?;
        let etag = put(client, target, url, HeaderMap::new(), bytes)
            .await?
            .ok_or_else(|| {
                HubError::protocol(
                    target,
                    format!("part {number} was answered without an ETag"),
                )
            })?;
        etags.push(json!({"partNumber": number, "etag": etag}));
    }
    let body = json!({"oid": object.sha256, "parts": etags});
    let request = client
        .request(Method::POST, action_url(target, action)?)
        .header(ACCEPT, LFS_JSON)
        .header(CONTENT_TYPE, LFS_JSON)
        .body(body.to_string());
    let response = client.send(target, request).await?;
    client.check(target, response, Access::Write).await?;
    Ok(())
}

async fn verify(
    client: &Client,
    target: &Target,
    object: &Object<'_>,
    action: &Action,
) -> Result<(), HubError> {
    let body = json!({"oid": object.sha256, "size": object.size});
    let request = client
        .request(Method::POST, action_url(target, action)?)
        .headers(headers_of(action))
        .header(ACCEPT, LFS_JSON)
        .header(CONTENT_TYPE, LFS_JSON)
        .body(body.to_string());
    let response = client.send(target, request).await?;
    client.check(target, response, Access::Write).await?;
    Ok(())
}
