//! One subset and split of a Hub dataset, downloaded into the cache (or found there offline).
//!
//! The files are found as `datasets` finds them, in this order: the card's `configs`; else the
//! standard layout (`data/{split}-*`, `{split}.jsonl` and the like at the top, a `{split}/`
//! folder; a repository with no split in its file names is all `train`); else the Hub's
//! Parquet conversion (the `refs/convert/parquet` branch, listed by
//! `/api/datasets/{repo}/parquet`), which is how datasets kept in other formats or built by a
//! loading script are read.

use super::address::check_path;
use super::cache::{Cache, is_commit_hash};
use super::card::{self, Config};
use super::client::{Client, encode_path, encode_segment};
use super::download::download;
use super::error::Access;
use super::glob;
use super::{DatasetAddress, HubError, HubOptions, RepoId, Target};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The revision that holds the Hub's Parquet conversion.
const CONVERSION: &str = "refs/convert/parquet";
/// Pages of a tree listing read at most (the Hub's pages hold 1000 entries).
const MAX_PAGES: usize = 10_000;
/// The file extensions rejudge reads.
const EXTENSIONS: [&str; 5] = [".parquet", ".jsonl", ".ndjson", ".json", ".csv"];
/// The split names `datasets` recognises in file and folder names.
const SPLIT_WORDS: [&str; 9] = [
    "train",
    "training",
    "validation",
    "valid",
    "dev",
    "val",
    "test",
    "testing",
    "eval",
];

/// Where a split's files were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSource {
    /// The dataset card's `configs`.
    Card,
    /// The standard file layout.
    Layout,
    /// The Hub's Parquet conversion (`refs/convert/parquet`).
    Conversion,
}

impl DataSource {
    /// How a message names it.
    pub fn describe(self) -> &'static str {
        match self {
            DataSource::Card => "the card's configs",
            DataSource::Layout => "the file layout",
            DataSource::Conversion => "the Hub's Parquet conversion",
        }
    }
}

/// The files of one subset and split, in the cache.
#[derive(Debug, Clone)]
pub struct DatasetFiles {
    /// The commit they belong to (of `refs/convert/parquet` for the conversion).
    pub commit: String,
    /// The subset.
    pub subset: String,
    /// The split.
    pub split: String,
    /// Where they were found.
    pub source: DataSource,
    /// Their paths in the repository, in reading order.
    pub paths: Vec<String>,
    /// Their paths in the cache (snapshot links), in the same order.
    pub files: Vec<PathBuf>,
}

/// The files one subset and split are made of, before any download.
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    subset: String,
    split: String,
    paths: Vec<String>,
    source: DataSource,
}

/// Why no files were chosen: the message, and the subsets and splits that are known.
#[derive(Debug, Clone, PartialEq)]
struct Missing {
    problem: String,
    available: BTreeMap<String, Vec<String>>,
    from: &'static str,
    /// The subset and split are declared, and no file matches their patterns (offline: none
    /// is cached).
    declared: bool,
}

/// Downloads (or, offline, finds in the cache) the files of `subset` (the default one when
/// `None`) and `split` of the dataset at `address`.
pub async fn fetch_dataset(
    options: &HubOptions,
    address: &DatasetAddress,
    subset: Option<&str>,
    split: &str,
) -> Result<DatasetFiles, HubError> {
    let cache = Cache::new(&options.cache);
    if options.offline {
        return offline(&cache, address, subset, split);
    }
    let client = Client::new(options)?;
    let repo = &address.repo;
    let revision = address.revision();
    let target = Target::repo(repo).at(revision);
    let info = info(&client, repo, revision).await?;
    let commit = info.sha;
    let files = tree(&client, repo, &commit, None).await?;
    let readme = if files.iter().any(|path| path == "README.md") {
        let readme = download(&client, &cache, repo, &commit, "README.md")
            .await?
            .1;
        // The ref is written once its snapshot holds a file, as `huggingface_hub` expects.
        cache.set_commit(repo, revision, &commit)?;
        Some(readme)
    } else {
        None
    };
    let configs = match info.card_data.as_ref().map(card::from_card_data) {
        Some(Ok(Some(configs))) => Some(configs),
        _ => read_card(&target, readme.as_deref())?,
    };
    let choice = match plan(configs.as_deref(), &files, subset, split) {
        Ok(Some(choice)) => choice,
        Ok(None) if address.revision.is_none() || revision == "main" => {
            return conversion(&client, &cache, repo, subset, split).await;
        }
        Ok(None) => return Err(no_files(&target, split, None)),
        Err(missing) => return Err(no_data(&target, &missing)),
    };
    let mut cached = Vec::with_capacity(choice.paths.len());
    for path in &choice.paths {
        cached.push(download(&client, &cache, repo, &commit, path).await?.1);
    }
    cache.set_commit(repo, revision, &commit)?;
    Ok(finish(choice, commit, cached))
}

fn finish(choice: Choice, commit: String, files: Vec<PathBuf>) -> DatasetFiles {
    DatasetFiles {
        commit,
        subset: choice.subset,
        split: choice.split,
        source: choice.source,
        paths: choice.paths,
        files,
    }
}

fn read_card(
    target: &Target,
    readme: Option<&std::path::Path>,
) -> Result<Option<Vec<Config>>, HubError> {
    let Some(readme) = readme else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(readme).map_err(|e| HubError::io(readme, e))?;
    card::from_readme(&text).map_err(|message| HubError::Card {
        target: target.file("README.md"),
        message,
    })
}

/// The same, from the cache alone.
fn offline(
    cache: &Cache,
    address: &DatasetAddress,
    subset: Option<&str>,
    split: &str,
) -> Result<DatasetFiles, HubError> {
    let repo = &address.repo;
    let revision = address.revision();
    let target = Target::repo(repo).at(revision);
    let not_cached = |target: &Target| HubError::NotCached {
        target: target.clone(),
        cache: cache.root().to_path_buf(),
    };
    let planned = match cache.commit(repo, revision) {
        Some(commit) => {
            let files = cache.snapshot_paths(repo, &commit);
            let readme = cache.cached(repo, &commit, "README.md");
            let configs = read_card(&target, readme.as_deref())?;
            plan(configs.as_deref(), &files, subset, split).map(|c| c.map(|c| (c, commit)))
        }
        // Nothing was downloaded from the branch itself when the conversion was read.
        None if address.revision.is_none() || revision == "main" => Ok(None),
        None => return Err(not_cached(&target)),
    };
    let (choice, commit) = match planned {
        Ok(Some(found)) => found,
        Ok(None) => {
            let commit = cache
                .commit(repo, CONVERSION)
                .ok_or_else(|| not_cached(&target))?;
            let files = cache.snapshot_paths(repo, &commit);
            let listed = converted_files(&files);
            let choice = choose_converted(&listed, subset, split)
                .map_err(|missing| no_data(&target.at(CONVERSION), &missing))?;
            (choice, commit)
        }
        Err(missing) if missing.declared => return Err(not_cached(&target)),
        Err(missing) => return Err(no_data(&target, &missing)),
    };
    if let Some(problem) = missing_shards(&choice.paths) {
        return Err(HubError::NoData {
            target: target.at(&commit),
            problem: format!(
                "the cache holds only part of split {}: {problem}",
                choice.split
            ),
            hint: "run once with the network (without HF_HUB_OFFLINE) to download the rest",
        });
    }
    let files = choice
        .paths
        .iter()
        .map(|path| {
            cache
                .cached(repo, &commit, path)
                .ok_or_else(|| not_cached(&target.file(path)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(finish(choice, commit, files))
}

/// For sharded names (`train-00000-of-00003.parquet`), which shards the list lacks.
fn missing_shards(paths: &[String]) -> Option<String> {
    let mut groups: BTreeMap<(String, u32), BTreeSet<u32>> = BTreeMap::new();
    for path in paths {
        let Some((prefix, index, count)) = shard_name(path) else {
            continue;
        };
        groups.entry((prefix, count)).or_default().insert(index);
    }
    groups.into_iter().find_map(|((prefix, count), present)| {
        let have = u32::try_from(present.len()).unwrap_or(u32::MAX);
        (have < count).then(|| format!("{have} of the {count} shards of {prefix}"))
    })
}

/// `(PREFIX, INDEX, COUNT)` of `PREFIX-INDEX-of-COUNT.EXT`, both numbers of five digits.
fn shard_name(path: &str) -> Option<(String, u32, u32)> {
    let at = path.rfind("-of-")?;
    let count = path.get(at + 4..at + 9)?;
    let index = path.get(at.checked_sub(5)?..at)?;
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if !(digits(count) && digits(index)) || path.get(at.checked_sub(6)?..at - 5) != Some("-") {
        return None;
    }
    Some((
        path[..at - 6].to_owned(),
        index.parse().ok()?,
        count.parse().ok()?,
    ))
}

/// What `GET /api/datasets/{repo}/revision/{revision}` answers, as far as it is used.
#[derive(Deserialize)]
pub(crate) struct Info {
    pub(crate) sha: String,
    #[serde(rename = "cardData", default)]
    card_data: Option<Value>,
}

pub(crate) async fn info(client: &Client, repo: &RepoId, revision: &str) -> Result<Info, HubError> {
    let target = Target::repo(repo).at(revision);
    let path = format!(
        "/api/{}/{}/revision/{}",
        repo.kind().plural(),
        repo.id(),
        encode_segment(revision)
    );
    let url = client.url(&target, &path)?;
    let response = client
        .send(&target, client.request(Method::GET, url))
        .await?;
    let response = client.check(&target, response, Access::Read).await?;
    let info: Info = client.json(&target, response).await?;
    if !is_commit_hash(&info.sha) {
        return Err(HubError::protocol(
            &target,
            format!("{:?} is not a commit hash", info.sha),
        ));
    }
    Ok(info)
}

/// One entry of a tree listing.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
}

/// Every file path of `commit` (under `folder`, when given), following the listing's pages.
pub(crate) async fn tree(
    client: &Client,
    repo: &RepoId,
    commit: &str,
    folder: Option<&str>,
) -> Result<Vec<String>, HubError> {
    let target = Target::repo(repo).at(commit);
    let below = folder
        .map(|f| format!("/{}", encode_path(f)))
        .unwrap_or_default();
    let path = format!(
        "/api/{}/{}/tree/{}{below}?recursive=true",
        repo.kind().plural(),
        repo.id(),
        encode_segment(commit)
    );
    let mut next = Some(client.url(&target, &path)?);
    let mut files = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some(url) = next.take() else {
            break;
        };
        let response = client
            .send(&target, client.request(Method::GET, url))
            .await?;
        let response = client.check(&target, response, Access::Read).await?;
        next = next_page(&response)
            .map(|link| response.url().join(&link))
            .transpose()
            .map_err(|e| HubError::protocol(&target, format!("a bad next-page link: {e}")))?;
        if next.as_ref().is_some_and(|url| !client.on_hub(url)) {
            return Err(HubError::protocol(
                &target,
                "the next page is not on the Hub",
            ));
        }
        let entries: Vec<Entry> = client.json(&target, response).await?;
        files.extend(
            entries
                .into_iter()
                .filter(|entry| entry.kind == "file" && check_path(&entry.path).is_ok())
                .map(|entry| entry.path),
        );
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The `rel="next"` target of a `Link` header.
fn next_page(response: &reqwest::Response) -> Option<String> {
    let link = super::client::header(response, "link")?;
    link.split(',').find_map(|part| {
        let (target, parameters) = part.split_once(';')?;
        let is_next = parameters
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// The files of a subset and split by the card or the layout: `Ok(None)` when neither names
/// any (the Parquet conversion is then tried), `Err` when the card declares subsets and splits
/// and the ones asked for are not among them.
fn plan(
    configs: Option<&[Config]>,
    files: &[String],
    subset: Option<&str>,
    split: &str,
) -> Result<Option<Choice>, Missing> {
    let Some(configs) = configs.filter(|configs| !configs.is_empty()) else {
        if subset.is_some_and(|subset| subset != "default") {
            return Ok(None);
        }
        return Ok(layout(files, "", split).map(|paths| Choice {
            subset: "default".into(),
            split: split.into(),
            paths,
            source: DataSource::Layout,
        }));
    };
    let available: BTreeMap<String, Vec<String>> = configs
        .iter()
        .map(|config| (config.name.clone(), config_splits(config, files)))
        .collect();
    let missing = |problem: String| Missing {
        problem,
        available: available.clone(),
        from: "the card",
        declared: false,
    };
    let config = choose_config(configs, subset).map_err(missing)?;
    let paths = match &config.splits {
        Some(splits) => {
            let Some((_, patterns)) = splits.iter().find(|(name, _)| name == split) else {
                return Err(missing(format!(
                    "subset {} has no split {split}",
                    config.name
                )));
            };
            matching(files, patterns)
        }
        None => layout(files, config.data_dir.as_deref().unwrap_or(""), split).unwrap_or_default(),
    };
    if paths.is_empty() {
        let mut unmatched = missing(format!(
            "the card's patterns for subset {}, split {split} match no file rejudge reads (.parquet, .jsonl, .json, .csv)",
            config.name
        ));
        unmatched.declared = true;
        return Err(unmatched);
    }
    Ok(Some(Choice {
        subset: config.name.clone(),
        split: split.into(),
        paths,
        source: DataSource::Card,
    }))
}

/// The subset asked for, else the default: the one the card marks, the one named `default`,
/// or the only one.
fn choose_config<'c>(configs: &'c [Config], subset: Option<&str>) -> Result<&'c Config, String> {
    if let Some(name) = subset {
        return configs
            .iter()
            .find(|config| config.name == name)
            .ok_or_else(|| format!("the card declares no subset {name}"));
    }
    configs
        .iter()
        .find(|config| config.default)
        .or_else(|| configs.iter().find(|config| config.name == "default"))
        .or(match configs {
            [only] => Some(only),
            _ => None,
        })
        .ok_or_else(|| "the card declares several subsets and none is the default".into())
}

fn config_splits(config: &Config, files: &[String]) -> Vec<String> {
    match &config.splits {
        Some(splits) => splits.iter().map(|(name, _)| name.clone()).collect(),
        None => layout_splits(files, config.data_dir.as_deref().unwrap_or(""))
            .into_iter()
            .collect(),
    }
}

/// The files rejudge reads that match any of `patterns`, sorted.
fn matching(files: &[String], patterns: &[String]) -> Vec<String> {
    let mut found: Vec<String> = files
        .iter()
        .filter(|path| readable(path) && patterns.iter().any(|p| glob::matches(p, path)))
        .cloned()
        .collect();
    found.sort();
    found
}

fn readable(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    EXTENSIONS
        .iter()
        .any(|extension| lower.ends_with(extension))
}

/// The split names the standard layout shows under `folder` (`""` for the top).
fn layout_splits(files: &[String], folder: &str) -> BTreeSet<String> {
    let mut splits = BTreeSet::new();
    for path in files.iter().filter(|path| readable(path)) {
        let Some(relative) = within(path, folder) else {
            continue;
        };
        if let Some(name) = relative.strip_prefix("data/")
            && let Some((prefix, _, _)) = shard_name(name).filter(|_| !name.contains('/'))
        {
            splits.insert(prefix);
            continue;
        }
        let parts: Vec<&str> = relative.split('/').collect();
        let word = match parts.as_slice() {
            [file] | ["data", file] => split_word(file.split(['.', '-', '_']).next().unwrap_or("")),
            [folder, ..] => split_word(folder),
            [] => None,
        };
        splits.extend(word.map(str::to_owned));
    }
    splits
}

fn split_word(word: &str) -> Option<&'static str> {
    SPLIT_WORDS.into_iter().find(|known| *known == word)
}

fn within<'p>(path: &'p str, folder: &str) -> Option<&'p str> {
    if folder.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(folder)?.strip_prefix('/')
    }
}

/// The files of `split` by the standard layout under `folder`; `None` when there are none.
fn layout(files: &[String], folder: &str, split: &str) -> Option<Vec<String>> {
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let escaped = escape(split);
    let groups = [
        vec![format!("data/{escaped}-*"), format!("data/{escaped}.*")],
        vec![format!("{escaped}-*"), format!("{escaped}.*")],
        vec![format!("{escaped}/**"), format!("data/{escaped}/**")],
    ];
    for group in groups {
        let patterns: Vec<String> = group.iter().map(|p| format!("{prefix}{p}")).collect();
        let found = matching(files, &patterns);
        if !found.is_empty() {
            return Some(found);
        }
    }
    // A repository whose file names show no split at all is one `train` split, as in
    // `datasets`.
    if split == "train" && layout_splits(files, folder).is_empty() {
        let everything = matching(files, &[format!("{prefix}**")]);
        return (!everything.is_empty()).then_some(everything);
    }
    None
}

/// A split name as a literal glob pattern.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "*?[".contains(c) {
                format!("[{c}]")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The conversion's files by subset and split: `CONFIG/SPLIT/NNNN.parquet`, or
/// `CONFIG/partial-SPLIT/NNNN.parquet` for a conversion of the first rows only.
fn converted_files(files: &[String]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut listed: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for path in files {
        let parts: Vec<&str> = path.split('/').collect();
        if let [config, split, file] = parts.as_slice()
            && file.ends_with(".parquet")
        {
            let split = split.strip_prefix("partial-").unwrap_or(split);
            listed
                .entry((*config).to_owned())
                .or_default()
                .entry(split.to_owned())
                .or_default()
                .push(path.clone());
        }
    }
    listed
}

fn choose_converted(
    listed: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    subset: Option<&str>,
    split: &str,
) -> Result<Choice, Missing> {
    let available: BTreeMap<String, Vec<String>> = listed
        .iter()
        .map(|(config, splits)| (config.clone(), splits.keys().cloned().collect()))
        .collect();
    let missing = |problem: String| Missing {
        problem,
        available: available.clone(),
        from: "the Parquet conversion",
        declared: false,
    };
    let config = match subset {
        Some(name) => name,
        None if listed.contains_key("default") => "default",
        None if listed.len() == 1 => listed.keys().next().map_or("default", String::as_str),
        None if listed.is_empty() => {
            return Err(missing("neither the card, the file layout nor the Hub's Parquet conversion names any data file".into()));
        }
        None => {
            return Err(missing(
                "the dataset has several subsets and none is the default".into(),
            ));
        }
    };
    let splits = listed
        .get(config)
        .ok_or_else(|| missing(format!("there is no subset {config}")))?;
    let paths = splits
        .get(split)
        .ok_or_else(|| missing(format!("subset {config} has no split {split}")))?;
    let mut paths = paths.clone();
    paths.sort();
    Ok(Choice {
        subset: config.to_owned(),
        split: split.to_owned(),
        paths,
        source: DataSource::Conversion,
    })
}

/// The Hub's Parquet conversion of the default branch.
async fn conversion(
    client: &Client,
    cache: &Cache,
    repo: &RepoId,
    subset: Option<&str>,
    split: &str,
) -> Result<DatasetFiles, HubError> {
    let target = Target::repo(repo).at(CONVERSION);
    let url = client.url(&target, &format!("/api/datasets/{}/parquet", repo.id()))?;
    let response = client
        .send(&target, client.request(Method::GET, url))
        .await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(no_files(&Target::repo(repo).at("main"), split, subset));
    }
    let response = client.check(&target, response, Access::Read).await?;
    let listing: BTreeMap<String, BTreeMap<String, Vec<String>>> =
        client.json(&target, response).await?;
    // The listing says which subsets and splits exist; the branch's tree names their files.
    let known: BTreeMap<String, BTreeMap<String, Vec<String>>> = listing
        .into_iter()
        .map(|(config, splits)| {
            (
                config,
                splits.into_keys().map(|s| (s, Vec::new())).collect(),
            )
        })
        .collect();
    let chosen = choose_converted(&known, subset, split).map_err(|m| no_data(&target, &m))?;
    let commit = info(client, repo, CONVERSION).await?.sha;
    let files = tree(client, repo, &commit, Some(&chosen.subset)).await?;
    let listed = converted_files(&files);
    let choice = choose_converted(&listed, Some(&chosen.subset), split)
        .map_err(|m| no_data(&target.at(&commit), &m))?;
    let mut cached = Vec::with_capacity(choice.paths.len());
    for path in &choice.paths {
        cached.push(download(client, cache, repo, &commit, path).await?.1);
    }
    cache.set_commit(repo, CONVERSION, &commit)?;
    Ok(finish(choice, commit, cached))
}

fn no_data(target: &Target, missing: &Missing) -> HubError {
    let declared = if missing.available.is_empty() {
        String::new()
    } else {
        let lines: String = missing
            .available
            .iter()
            .map(|(subset, splits)| {
                format!(
                    "\n  subset {subset}: {}",
                    if splits.is_empty() {
                        "no splits".to_owned()
                    } else {
                        splits.join(", ")
                    }
                )
            })
            .collect();
        format!("\n{} declares:{lines}", capitalised(missing.from))
    };
    HubError::NoData {
        target: target.clone(),
        problem: format!("{}{declared}", missing.problem),
        hint: "choose one with --subset NAME and --split NAME",
    }
}

fn no_files(target: &Target, split: &str, subset: Option<&str>) -> HubError {
    let asked = match subset {
        Some(subset) => format!("subset {subset}, split {split}"),
        None => format!("split {split}"),
    };
    HubError::NoData {
        target: target.clone(),
        problem: format!(
            "no data files for {asked}: the card has no configs, the file layout shows none, and there is no Parquet conversion"
        ),
        hint: "check the dataset's name and --subset/--split; rejudge reads .parquet, .jsonl, .json and .csv files",
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    fn config(name: &str, default: bool, splits: &[(&str, &[&str])]) -> Config {
        Config {
            name: name.into(),
            default,
            splits: Some(
                splits
                    .iter()
                    .map(|(s, p)| ((*s).to_owned(), p.iter().map(|p| (*p).to_owned()).collect()))
                    .collect(),
            ),
            data_dir: None,
        }
    }

    #[test]
    fn the_card_decides_the_subset_and_split() {
        let repo = files(&[
            "README.md",
            "a/train-0.jsonl",
            "a/train-1.jsonl",
            "a/test.jsonl",
            "b/x.csv",
        ]);
        let configs = [
            config(
                "first",
                false,
                &[("train", &["a/train-*"]), ("test", &["a/test.jsonl"])],
            ),
            config("second", true, &[("train", &["b/*.csv"])]),
        ];
        let chosen = plan(Some(&configs), &repo, None, "train").unwrap().unwrap();
        assert_eq!(
            (chosen.subset.as_str(), chosen.paths.clone()),
            ("second", files(&["b/x.csv"]))
        );
        let chosen = plan(Some(&configs), &repo, Some("first"), "train")
            .unwrap()
            .unwrap();
        assert_eq!(chosen.paths, files(&["a/train-0.jsonl", "a/train-1.jsonl"]));
        assert_eq!(chosen.source, DataSource::Card);

        let missing = plan(Some(&configs), &repo, Some("first"), "validation").unwrap_err();
        assert_eq!(missing.problem, "subset first has no split validation");
        assert_eq!(missing.available["first"], ["train", "test"]);
        let missing = plan(Some(&configs), &repo, Some("third"), "train").unwrap_err();
        assert!(missing.problem.contains("no subset third"));
        let undecided = [config("x", false, &[]), config("y", false, &[])];
        assert!(plan(Some(&undecided), &repo, None, "train").is_err());
    }

    #[test]
    fn without_configs_the_standard_layout_is_read() {
        let sharded = files(&[
            ".gitattributes",
            "README.md",
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/test-00000-of-00001.parquet",
        ]);
        let chosen = plan(None, &sharded, None, "train").unwrap().unwrap();
        assert_eq!(chosen.paths, sharded[2..4]);
        assert_eq!(chosen.source, DataSource::Layout);
        assert_eq!(
            layout_splits(&sharded, ""),
            BTreeSet::from(["test".into(), "train".into()])
        );
        assert_eq!(plan(None, &sharded, None, "validation").unwrap(), None);

        let top = files(&["train.jsonl", "test.jsonl", "notes.txt"]);
        assert_eq!(
            plan(None, &top, None, "test").unwrap().unwrap().paths,
            ["test.jsonl"]
        );
        let folders = files(&["train/a.csv", "train/b.csv", "test/c.csv"]);
        assert_eq!(
            plan(None, &folders, None, "train").unwrap().unwrap().paths,
            ["train/a.csv", "train/b.csv"]
        );

        let unnamed = files(&["pairs.jsonl", "more/pairs2.jsonl", "image.png"]);
        let chosen = plan(None, &unnamed, None, "train").unwrap().unwrap();
        assert_eq!(
            chosen.paths,
            ["more/pairs2.jsonl", "pairs.jsonl"],
            "no split names: all is train"
        );
        assert_eq!(plan(None, &unnamed, None, "test").unwrap(), None);
        assert_eq!(
            plan(None, &files(&["README.md"]), None, "train").unwrap(),
            None
        );
        assert_eq!(
            plan(None, &sharded, Some("other"), "train").unwrap(),
            None,
            "other subsets: the conversion"
        );
    }

    #[test]
    fn a_config_with_only_a_data_dir_uses_the_layout_inside_it() {
        let repo = files(&[
            "en/data/train-00000-of-00001.parquet",
            "it/data/train-00000-of-00001.parquet",
        ]);
        let configs = [Config {
            name: "it".into(),
            default: false,
            splits: None,
            data_dir: Some("it".into()),
        }];
        let chosen = plan(Some(&configs), &repo, None, "train").unwrap().unwrap();
        assert_eq!(chosen.paths, ["it/data/train-00000-of-00001.parquet"]);
    }

    #[test]
    fn the_conversion_layout_and_missing_shards() {
        let converted = converted_files(&files(&[
            "default/train/0000.parquet",
            "default/train/0001.parquet",
            "default/partial-test/0000.parquet",
            "other/train/0000.parquet",
            "README.md",
        ]));
        let chosen = choose_converted(&converted, None, "train").unwrap();
        assert_eq!(
            chosen.paths,
            ["default/train/0000.parquet", "default/train/0001.parquet"]
        );
        assert_eq!(
            choose_converted(&converted, None, "test").unwrap().paths,
            ["default/partial-test/0000.parquet"]
        );
        let missing = choose_converted(&converted, Some("nope"), "train").unwrap_err();
        assert_eq!(missing.available["other"], ["train"]);

        assert_eq!(
            shard_name("data/train-00001-of-00003.parquet"),
            Some(("data/train".into(), 1, 3))
        );
        assert_eq!(shard_name("data/train.parquet"), None);
        let partial = files(&["data/train-00000-of-00002.parquet"]);
        assert_eq!(
            missing_shards(&partial).as_deref(),
            Some("1 of the 2 shards of data/train")
        );
        assert_eq!(
            missing_shards(&files(&["data/train-00000-of-00001.parquet"])),
            None
        );
    }

    #[test]
    fn no_data_errors_list_what_is_declared() {
        let target = Target {
            repo: "dataset org/name".into(),
            revision: Some("main".into()),
            path: None,
        };
        let error = no_data(
            &target,
            &Missing {
                problem: "subset a has no split x".into(),
                available: BTreeMap::from([("a".into(), vec!["train".into(), "test".into()])]),
                from: "the card",
                declared: false,
            },
        )
        .to_string();
        assert_eq!(
            error,
            "dataset org/name at main: subset a has no split x\nThe card declares:\n  subset a: train, test\nhint: choose one with --subset NAME and --split NAME"
        );
    }
}
