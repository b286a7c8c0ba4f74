//! The in-process judge's model file, from the cache or downloaded into it.

use super::cache::Cache;
use super::client::Client;
use super::download::download;
use super::{HubError, HubOptions, ModelAddress, Target};
use std::path::PathBuf;

/// The model file at `address`: from the cache when it holds the file at the revision's
/// cached commit (without asking the Hub, so a cached model works without a network), else
/// downloaded into the cache.
pub async fn fetch_model_file(
    options: &HubOptions,
    address: &ModelAddress,
) -> Result<PathBuf, HubError> {
    let cache = Cache::new(&options.cache);
    let repo = &address.repo;
    let revision = address.revision();
    if let Some(commit) = cache.commit(repo, revision)
        && let Some(path) = cache.cached(repo, &commit, &address.file)
    {
        return Ok(path);
    }
    if options.offline {
        return Err(HubError::NotCached {
            target: Target::repo(repo).at(revision).file(&address.file),
            cache: options.cache.clone(),
        });
    }
    let client = Client::new(options)?;
    let (commit, path) = download(&client, &cache, repo, revision, &address.file).await?;
    cache.set_commit(repo, revision, &commit)?;
    Ok(path)
}
