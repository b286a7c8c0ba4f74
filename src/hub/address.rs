//! Names on the Hub: `hf://datasets/ORG/NAME[@REVISION]` for an input,
//! `hf://ORG/REPO[@REVISION]/FILE` for a model file, `ORG/NAME` for a push, and the checks every
//! name and path from a user or a server passes before it reaches a URL or the cache.

use super::HubError;

/// What a repository holds; it decides the URL prefixes and the cache folder's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// A model repository.
    Model,
    /// A dataset repository.
    Dataset,
}

impl RepoKind {
    /// The word the Hub uses for it.
    pub fn singular(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }

    /// The API path segment: `/api/models/...`, `/api/datasets/...`; also the cache folder's
    /// prefix (`datasets--ORG--NAME`).
    pub(crate) fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// What precedes `ORG/NAME` in file and Git URLs: nothing for models.
    pub(crate) fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        }
    }
}

/// A repository: its kind and `ORG/NAME`, both parts checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    kind: RepoKind,
    owner: String,
    name: String,
}

impl RepoId {
    /// Checks `ORG/NAME` as the Hub names repositories; the error says what is wrong.
    pub fn new(kind: RepoKind, id: &str) -> Result<Self, String> {
        let Some((owner, name)) = id.split_once('/') else {
            return Err(format!("{id:?} is not ORG/NAME"));
        };
        for part in [owner, name] {
            check_name(part)?;
        }
        Ok(RepoId {
            kind,
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Its kind.
    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    /// `ORG/NAME`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The repository's name without its owner.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner: a user or an organisation.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The folder in the cache: `datasets--ORG--NAME`, as `huggingface_hub` names it.
    pub(crate) fn cache_folder(&self) -> String {
        format!("{}--{}--{}", self.kind.plural(), self.owner, self.name)
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} {}/{}",
            self.kind.singular(),
            self.owner,
            self.name
        )
    }
}

/// The Hub's rule for user, organisation and repository names.
fn check_name(part: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let starts_well = part
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if part.is_empty() || part.len() > 96 || !starts_well || !part.chars().all(allowed) {
        return Err(format!(
            "{part:?} is not a repository or owner name (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 96)"
        ));
    }
    let git = std::path::Path::new(part)
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("git"));
    if part.contains("--") || part.contains("..") || git {
        return Err(format!(
            "{part:?} is not a repository or owner name (no \"--\", \"..\" or \".git\" ending)"
        ));
    }
    Ok(())
}

/// A revision as given after `@`: a branch, a tag, a full ref or a commit; `%2F` stands for
/// `/` as in `huggingface_hub`'s addresses.
pub(crate) fn check_revision(text: &str) -> Result<String, String> {
    let revision = percent_decoded(text).ok_or_else(|| format!("{text:?} is badly escaped"))?;
    let bad = revision.is_empty()
        || revision.len() > 256
        || revision.starts_with('/')
        || revision.ends_with('/')
        || revision
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        || revision
            .split('/')
            .any(|part| part.is_empty() || part == "..");
    if bad {
        return Err(format!("{revision:?} is not a branch, tag or commit"));
    }
    Ok(revision)
}

/// Checks a file's path inside a repository, as a user gave it or a server listed it, before
/// it becomes part of a URL or of a path in the cache.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.len() > 4096
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(format!("{path:?} is not a file path inside a repository"));
    }
    Ok(())
}

/// Decodes `%XX` escapes of ASCII characters; `None` for a broken escape.
fn percent_decoded(text: &str) -> Option<String> {
    let mut decoded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        let byte = u8::from_str_radix(code, 16).ok().filter(u8::is_ascii)?;
        decoded.push(char::from(byte));
        rest = &rest[at + 3..];
    }
    decoded.push_str(rest);
    Some(decoded)
}

/// Whether an input names a Hub address rather than a local path.
pub fn is_hub_address(text: &str) -> bool {
    text.starts_with("hf://")
}

/// `hf://datasets/ORG/NAME[@REVISION]`: a dataset input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetAddress {
    /// The dataset repository.
    pub repo: RepoId,
    /// The branch, tag or commit; the default branch when `None`.
    pub revision: Option<String>,
}

const DATASET_FORM: &str = "hf://datasets/ORG/NAME[@REVISION], e.g. hf://datasets/argilla/dpo-mix-7k or hf://datasets/ORG/NAME@v1.0";

impl DatasetAddress {
    /// Whether `text` is an `hf://` address (which [`DatasetAddress::parse`] then checks).
    pub fn is_address(text: &str) -> bool {
        is_hub_address(text)
    }

    /// Parses and checks an address.
    pub fn parse(text: &str) -> Result<Self, HubError> {
        let problem = |problem: String| HubError::Address {
            address: text.to_owned(),
            problem,
            hint: DATASET_FORM,
        };
        let Some(rest) = text.strip_prefix("hf://") else {
            return Err(problem("an address starts with hf://".into()));
        };
        let Some(rest) = rest.strip_prefix("datasets/") else {
            return Err(problem(
                "only datasets can be read (hf://datasets/...); a model file goes to --model-file"
                    .into(),
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (id, revision) = match rest.split_once('@') {
            Some((id, revision)) => (id, Some(check_revision(revision).map_err(problem)?)),
            None => (rest, None),
        };
        if id.matches('/').count() != 1 {
            return Err(problem(format!(
                "{id:?} is not ORG/NAME (a path inside the repository is not supported: choose the files with --subset and --split)"
            )));
        }
        let repo = RepoId::new(RepoKind::Dataset, id).map_err(problem)?;
        Ok(DatasetAddress { repo, revision })
    }

    /// The revision asked for: `main` when none was given.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

impl std::fmt::Display for DatasetAddress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "hf://datasets/{}", self.repo.id())?;
        match &self.revision {
            Some(revision) => write!(formatter, "@{}", revision.replace('/', "%2F")),
            None => Ok(()),
        }
    }
}

/// `hf://ORG/REPO[@REVISION]/FILE`: a file of a model repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAddress {
    /// The model repository.
    pub repo: RepoId,
    /// The branch, tag or commit; the default branch when `None`.
    pub revision: Option<String>,
    /// The file's path in the repository.
    pub file: String,
}

impl ModelAddress {
    /// Parses and checks an address.
    pub fn parse(text: &str) -> Result<Self, HubError> {
        let problem = |problem: String| HubError::Address {
            address: text.to_owned(),
            problem,
            hint: "hf://ORG/REPO/FILE.gguf, e.g. hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        };
        let Some(rest) = text.strip_prefix("hf://") else {
            return Err(problem("an address starts with hf://".into()));
        };
        let mut parts = rest.splitn(3, '/');
        let (Some(owner), Some(name), Some(file)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(problem("expected ORG/REPO/FILE after hf://".into()));
        };
        let (name, revision) = match name.split_once('@') {
            Some((name, revision)) => (name, Some(check_revision(revision).map_err(problem)?)),
            None => (name, None),
        };
        let repo = RepoId::new(RepoKind::Model, &format!("{owner}/{name}")).map_err(problem)?;
        check_path(file).map_err(problem)?;
        Ok(ModelAddress {
            repo,
            revision,
            file: file.to_owned(),
        })
    }

    /// The revision asked for: `main` when none was given.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_addresses_parse_with_and_without_a_revision() {
        let plain = DatasetAddress::parse("hf://datasets/argilla/dpo-mix-7k").unwrap();
        assert_eq!(plain.repo.id(), "argilla/dpo-mix-7k");
        assert_eq!(
            (plain.revision.as_deref(), plain.revision()),
            (None, "main")
        );
        assert_eq!(plain.to_string(), "hf://datasets/argilla/dpo-mix-7k");
        assert_eq!(plain.repo.cache_folder(), "datasets--argilla--dpo-mix-7k");

        let tagged = DatasetAddress::parse("hf://datasets/org/name@v1.0/").unwrap();
        assert_eq!(tagged.revision(), "v1.0");
        let converted =
            DatasetAddress::parse("hf://datasets/org/name@refs%2Fconvert%2Fparquet").unwrap();
        assert_eq!(converted.revision(), "refs/convert/parquet");
        assert_eq!(
            converted.to_string(),
            "hf://datasets/org/name@refs%2Fconvert%2Fparquet"
        );
        let raw = DatasetAddress::parse("hf://datasets/org/name@refs/pr/3").unwrap();
        assert_eq!(raw.revision(), "refs/pr/3");
    }

    #[test]
    fn bad_dataset_addresses_say_why() {
        for (text, says) in [
            ("hf://org/name", "only datasets"),
            ("hf://datasets/org", "not ORG/NAME"),
            ("hf://datasets/org/name/data/train.jsonl", "not supported"),
            ("hf://datasets/org/na me", "not a repository"),
            ("hf://datasets/org/-name", "not a repository"),
            ("hf://datasets/org/a--b", "no \"--\""),
            ("hf://datasets/../name", "not a repository"),
            ("hf://datasets/org/name@", "not a branch"),
            ("hf://datasets/org/name@a/../b", "not a branch"),
            ("hf://datasets/org/name@x%2", "badly escaped"),
            ("hf://datasets/org/name@x%0A", "not a branch"),
            ("datasets/org/name", "starts with hf://"),
        ] {
            let error = DatasetAddress::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
            assert!(error.contains("hint: hf://datasets/ORG/NAME"), "{error}");
        }
    }

    #[test]
    fn model_addresses_keep_the_file_path() {
        let address = ModelAddress::parse("hf://Qwen/Qwen2.5-GGUF/sub/model-q4.gguf").unwrap();
        assert_eq!(address.repo.id(), "Qwen/Qwen2.5-GGUF");
        assert_eq!(address.repo.cache_folder(), "models--Qwen--Qwen2.5-GGUF");
        assert_eq!(
            (address.file.as_str(), address.revision()),
            ("sub/model-q4.gguf", "main")
        );
        let pinned = ModelAddress::parse("hf://org/repo@abc123/m.gguf").unwrap();
        assert_eq!(pinned.revision(), "abc123");
        for bad in [
            "hf://org/repo",
            "hf://org/repo/../x.gguf",
            "hf://org/repo//x",
            "x.gguf",
        ] {
            assert!(ModelAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_paths_that_escape_the_repository_are_refused() {
        for good in [
            "README.md",
            "data/train-00000-of-00001.parquet",
            "a b/c.json",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "data/../../x",
            "a//b",
            "a\\b",
            "./a",
            "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
