//! Errors of the Hub client: each names the repository, the revision and the file when known,
//! the HTTP status and the server's words (secrets scrubbed, cut short), and a `hint:` line for
//! the common cases.

use std::path::PathBuf;

/// What a failed request was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The repository, with its kind: `dataset ORG/NAME`.
    pub repo: String,
    /// The revision, when one was involved.
    pub revision: Option<String>,
    /// The file in the repository, when one was involved.
    pub path: Option<String>,
}

impl Target {
    /// The repository alone.
    pub(crate) fn repo(repo: &super::RepoId) -> Self {
        Target {
            repo: repo.to_string(),
            revision: None,
            path: None,
        }
    }

    /// The same target at `revision`.
    pub(crate) fn at(&self, revision: &str) -> Self {
        Target {
            revision: Some(revision.to_owned()),
            ..self.clone()
        }
    }

    /// The same target's file `path`.
    pub(crate) fn file(&self, path: &str) -> Self {
        Target {
            path: Some(path.to_owned()),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.repo)?;
        if let Some(revision) = &self.revision {
            write!(formatter, " at {revision}")?;
        }
        if let Some(path) = &self.path {
            write!(formatter, ", file {path}")?;
        }
        Ok(())
    }
}

fn hint_line(hint: Option<&&str>) -> String {
    hint.map(|hint| format!("\nhint: {hint}"))
        .unwrap_or_default()
}

/// Errors reaching, reading from or writing to the Hub and its cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// An `hf://` address or a repository name is malformed.
    #[error("{address}: {problem}\nhint: {hint}")]
    Address {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        problem: String,
        /// The accepted form.
        hint: &'static str,
    },
    /// The Hub answered with an error status.
    #[error("{target}: the Hub answered HTTP {status}{}{}", if message.is_empty() { String::new() } else { format!(": {message}") }, hint_line(hint.as_ref()))]
    Status {
        /// What was asked for.
        target: Target,
        /// The HTTP status.
        status: u16,
        /// The Hub's error message or the start of its answer, secrets scrubbed.
        message: String,
        /// What to do about it.
        hint: Option<&'static str>,
    },
    /// The Hub could not be reached, or the connection broke.
    #[error(
        "{target}: no answer from {url}: {message}\nhint: check the network, or set HF_HUB_OFFLINE=1 to use only what is cached"
    )]
    Network {
        /// What was asked for.
        target: Target,
        /// Where, without query or credentials.
        url: String,
        /// The transport's error.
        message: String,
    },
    /// The Hub answered something this client cannot use.
    #[error("{target}: unexpected answer from the Hub: {message}")]
    Protocol {
        /// What was asked for.
        target: Target,
        /// What was wrong with the answer.
        message: String,
    },
    /// Offline, and the cache does not hold what is needed.
    #[error(
        "{target} is not in the Hugging Face cache at {cache} and HF_HUB_OFFLINE is set\nhint: run once with the network (without HF_HUB_OFFLINE) to fill the cache, or point HF_HUB_CACHE at a cache that holds it",
        cache = cache.display()
    )]
    NotCached {
        /// What was looked for.
        target: Target,
        /// The cache folder.
        cache: PathBuf,
    },
    /// No data files for this subset and split.
    #[error("{target}: {problem}\nhint: {hint}")]
    NoData {
        /// The dataset and revision.
        target: Target,
        /// What was not found, with the subsets and splits that are known, one line each.
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The dataset card's `configs` cannot be understood.
    #[error(
        "{target}: the dataset card's `configs` cannot be read: {message}\nhint: check the YAML block at the top of the dataset's README.md"
    )]
    Card {
        /// The card.
        target: Target,
        /// What is wrong.
        message: String,
    },
    /// A download does not match what the Hub said it would be.
    #[error("{target}: {message}\nhint: run the same command again to download it anew")]
    Corrupt {
        /// The file.
        target: Target,
        /// The mismatch.
        message: String,
    },
    /// A file in the cache or the output folder could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The folder to push is not a finished rejudge output folder.
    #[error("{folder}: {problem}\nhint: {hint}", folder = folder.display())]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// What is wrong.
        problem: String,
        /// What to do.
        hint: String,
    },
    /// Uploads need a token.
    #[error(
        "{target}: pushing needs a Hub token with write access\nhint: set HF_TOKEN (or name another variable with --hf-token-env) to a token with write access"
    )]
    NoToken {
        /// The repository.
        target: Target,
    },
    /// A push was asked for while offline.
    #[error(
        "{target}: pushing needs the network, and HF_HUB_OFFLINE is set\nhint: unset HF_HUB_OFFLINE, or push later with `rejudge push OUTPUT ORG/NAME`"
    )]
    Offline {
        /// The repository.
        target: Target,
    },
    /// `--private` was asked for, and the repository exists and is public.
    #[error(
        "{target} exists and is public, and --private was asked for; nothing was uploaded\nhint: make the repository private in its settings on the Hub, push without --private, or choose another name"
    )]
    Public {
        /// The repository.
        target: Target,
    },
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HubError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn protocol(target: &Target, message: impl Into<String>) -> Self {
        HubError::Protocol {
            target: target.clone(),
            message: message.into(),
        }
    }

    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a request was for; the hint for an error status depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// The hint for an error status, from the status, the Hub's `X-Error-Code`, whether a token was
/// sent, and whether the request read or wrote.
pub(crate) fn status_hint(
    status: u16,
    code: Option<&str>,
    had_token: bool,
    access: Access,
) -> Option<&'static str> {
    let hint = match (status, code) {
        (401, _) if !had_token => {
            "the repository may be private or gated, or may not exist: set HF_TOKEN (or name another variable with --hf-token-env) to a token that can read it"
        }
        (401, _) => {
            "the Hub refused the token: check that HF_TOKEN holds a valid token (a fine-grained token needs access to this repository)"
        }
        (403, Some("GatedRepo")) => {
            "this repository is gated: accept its conditions on its Hub page with the account the token belongs to"
        }
        (403, _) if access == Access::Write => {
            "the token cannot write here: use a token with write access to this namespace"
        }
        (403, _) => "the token's account has no access to this repository",
        (404, Some("RevisionNotFound")) => {
            "check the revision after @ (a branch, a tag or a full commit hash)"
        }
        (404, Some("EntryNotFound")) => "the file is not in the repository at this revision",
        (404, _) => {
            "check the repository's name; a private repository also answers 404 to a token that cannot see it"
        }
        (409, _) => "the repository or branch is in a state that conflicts with this request",
        (412, _) => "the branch moved during the push: run the push again",
        (429, _) => "the Hub is rate-limiting these requests: wait a while and run again",
        (500..=599, _) => "the Hub had a problem: try again later",
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_the_repository_revision_and_file() {
        let target = Target {
            repo: "dataset org/name".into(),
            revision: None,
            path: None,
        };
        assert_eq!(target.to_string(), "dataset org/name");
        assert_eq!(
            target.at("main").file("data/a.parquet").to_string(),
            "dataset org/name at main, file data/a.parquet"
        );
    }

    #[test]
    fn status_errors_carry_hints_for_the_common_cases() {
        let hint = |status, code, token| status_hint(status, code, token, Access::Read).unwrap();
        assert!(hint(401, None, false).contains("set HF_TOKEN"));
        assert!(hint(401, None, true).contains("refused the token"));
        assert!(hint(403, Some("GatedRepo"), true).contains("gated"));
        assert!(hint(404, Some("RevisionNotFound"), true).contains("revision"));
        assert!(hint(404, Some("RepoNotFound"), true).contains("name"));
        assert!(status_hint(418, None, true, Access::Read).is_none());
        let error = HubError::Status {
            target: Target {
                repo: "dataset org/name".into(),
                revision: Some("main".into()),
                path: None,
            },
            status: 401,
            message: "Repository not found".into(),
            hint: status_hint(401, None, false, Access::Read),
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "dataset org/name at main: the Hub answered HTTP 401: Repository not found\nhint: "
            ),
            "{text}"
        );
    }
}
