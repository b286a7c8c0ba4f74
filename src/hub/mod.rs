//! The Hugging Face Hub: a dataset's split read into the standard Hugging Face cache, the
//! in-process judge's model file, and an output folder pushed as one commit.
//!
//! # Why a client of our own
//!
//! This is a small client on `reqwest` for exactly the endpoints rejudge uses, not the `hf-hub`
//! crate. `hf-hub` 0.4 downloads model files only. `hf-hub` 1.0 downloads datasets and commits
//! through the commit API, but (as published) it uploads LFS content only through Xet: when the
//! LFS batch answer does not choose Xet, its large files fall back to inline upload, which the
//! Hub refuses for binary and large files. It has no offline mode and no Parquet conversion
//! listing, and it brings about 120 crates rejudge does not otherwise build, among them a second
//! `reqwest` (0.13), the Xet stack and `aws-lc-sys` (a C build). What rejudge needs is a dozen
//! requests: repo info and tree listing, resolve (HEAD, then a ranged GET), the Parquet
//! conversion listing, repo and branch creation, preupload, the LFS batch (basic and multipart
//! transfers) and the commit. Both the dataset and the model downloads use this one client and
//! the cache layout `huggingface_hub` writes, so files either side downloaded are reused.
//!
//! # Where the token goes
//!
//! The token is sent only to the Hub endpoint (the same scheme, host and port as
//! [`HubOptions::endpoint`]): never to the CDN a download is redirected to, never to the
//! storage URLs an upload is handed (those carry their own signatures), and it is scrubbed from
//! every error the server's words reach.
//!
//! The library never reads the environment: the command line fills [`HubOptions`].

mod address;
mod cache;
mod card;
mod client;
mod dataset;
mod download;
mod error;
mod glob;
mod lfs;
mod model;
mod push;

pub use address::{DatasetAddress, ModelAddress, RepoId, RepoKind, is_hub_address};
pub use dataset::{DataSource, DatasetFiles, fetch_dataset};
pub use error::{HubError, Target};
pub use model::fetch_model_file;
pub use push::{FolderFile, PushOutcome, PushRequest, folder_files, push};

use std::path::PathBuf;

/// The Hub's address when no other is given.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A Hub access token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct HubToken(String);

impl HubToken {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        HubToken(token)
    }

    /// The token itself, for the `Authorization` header and for scrubbing it out of messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HubToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("HubToken(<redacted>)")
    }
}

/// Where and how to reach the Hub; the command line fills it from the environment (`HF_TOKEN`,
/// `HF_HUB_OFFLINE`, `HF_HUB_CACHE`, `HF_HOME`, `HF_ENDPOINT`).
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// A token for private or gated repositories, and for every upload.
    pub token: Option<HubToken>,
    /// Use the cache only; never touch the network.
    pub offline: bool,
    /// The cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache: PathBuf,
    /// The Hub's address (a mirror, or a local stand-in); [`DEFAULT_ENDPOINT`] when `None`.
    pub endpoint: Option<String>,
}

impl HubOptions {
    /// The endpoint without a trailing slash.
    pub fn endpoint(&self) -> &str {
        self.endpoint
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT)
            .trim_end_matches('/')
    }
}
