//! The Hugging Face Hub on the command line: the environment read into [`HubOptions`] (the
//! library reads none), `hf://datasets/...` inputs opened, and pushes, after a run
//! (`--push-to-hub`) or of an existing folder (`rejudge push`).

use super::Finish;
use super::judge::variable;
use anyhow::{Context, Result, bail};
use rejudge::hub::{
    DatasetAddress, HubOptions, HubToken, PushOutcome, PushRequest, RepoId, RepoKind,
    fetch_dataset, is_hub_address, push,
};
use rejudge::run::Input;
use rejudge::settings::Settings;
use std::path::{Path, PathBuf};

/// `rejudge push`: an existing output folder to a Hub dataset repository, in one commit.
#[derive(Debug, clap::Args)]
pub struct PushArguments {
    /// The output folder of a finished run.
    output: PathBuf,
    /// The dataset repository: ORG/NAME (created when missing).
    repo: String,
    /// Create the repository as private; refuse to push to it if it exists and is public.
    #[arg(long)]
    private: bool,
    /// The branch to push to [default: main]; created from main when missing.
    #[arg(long, value_name = "BRANCH")]
    revision: Option<String>,
    /// Also push the journal (every request and answer, for an exact rerun elsewhere).
    #[arg(long)]
    push_journal: bool,
    /// The journal for --push-journal [default: OUTPUT/journal.sqlite].
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Environment variable holding the Hub token [default: HF_TOKEN, then the token file
    /// `hf auth login` writes].
    #[arg(long)]
    hf_token_env: Option<String>,
}

/// The Hub settings from the environment: the token (from `token_env`, else `HF_TOKEN`, else
/// the token file of `huggingface_hub`'s login), `HF_HUB_OFFLINE`, the cache (`HF_HUB_CACHE`,
/// else `HF_HOME/hub`, else `~/.cache/huggingface/hub`) and `HF_ENDPOINT`.
pub fn options(token_env: Option<&str>) -> Result<HubOptions> {
    let home = variable("HF_HOME").map(PathBuf::from).or_else(|| {
        let cache = variable("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| variable("HOME").map(|home| PathBuf::from(home).join(".cache")));
        cache.map(|cache| cache.join("huggingface"))
    });
    let cache = variable("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|home| home.join("hub")))
        .context("no Hugging Face cache folder\nhint: set HF_HUB_CACHE or HF_HOME")?;
    let offline = variable("HF_HUB_OFFLINE").is_some_and(|value| {
        ["1", "true", "yes", "on"]
            .iter()
            .any(|yes| value.trim().eq_ignore_ascii_case(yes))
    });
    Ok(HubOptions {
        token: token(token_env, home.as_deref())?,
        offline,
        cache,
        endpoint: variable("HF_ENDPOINT"),
    })
}

fn token(token_env: Option<&str>, home: Option<&Path>) -> Result<Option<HubToken>> {
    if let Some(name) = token_env {
        return match variable(name) {
            Some(token) => Ok(Some(HubToken::new(token.trim().to_owned()))),
            None => bail!("--hf-token-env {name}: the variable is not set or empty"),
        };
    }
    if let Some(token) = variable("HF_TOKEN") {
        return Ok(Some(HubToken::new(token.trim().to_owned())));
    }
    let file = variable("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| home.map(|home| home.join("token")));
    Ok(file
        .and_then(|file| std::fs::read_to_string(file).ok())
        .map(|text| text.trim().to_owned())
        .filter(|token| !token.is_empty())
        .map(HubToken::new))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Opens the input: a local file or folder, or a subset and split of a Hub dataset, downloaded
/// into the cache (or found there offline) and read from it.
pub fn open_input(settings: &Settings, labelled: bool) -> Result<Input> {
    let overrides = settings.column_overrides();
    if !is_hub_address(&settings.input) {
        if settings.subset.is_some() || settings.split.is_some() {
            bail!(
                "--subset and --split choose the files of an hf://datasets/ORG/NAME input; {} is a local path",
                settings.input
            );
        }
        let path = Path::new(&settings.input);
        return Ok(if labelled {
            Input::open_labelled(path, &overrides)?
        } else {
            Input::open(path, &overrides)?
        });
    }
    let address = DatasetAddress::parse(&settings.input)?;
    let options = options(settings.hf_token_env.as_deref())?;
    let split = settings.split.as_deref().unwrap_or("train");
    let fetched = fetch_dataset(&options, &address, settings.subset.as_deref(), split);
    let files = runtime()?.block_on(fetched)?;
    eprintln!(
        "{address}: subset {}, split {}, {} file{} at commit {} (from {})",
        files.subset,
        files.split,
        files.files.len(),
        if files.files.len() == 1 { "" } else { "s" },
        short(&files.commit),
        files.source.describe()
    );
    Ok(if labelled {
        Input::open_labelled_files(&files.files, &overrides)?
    } else {
        Input::open_files(&files.files, &overrides)?
    })
}

/// Checks, before any judging, that a push asked for can happen: the repository's name, the
/// network and a token.
pub fn check_push(settings: &Settings) -> Result<()> {
    let Some(repo) = &settings.push_to_hub else {
        if settings.private || settings.push_journal || settings.revision.is_some() {
            bail!("--private, --revision and --push-journal go with --push-to-hub ORG/NAME");
        }
        return Ok(());
    };
    repo_id(repo)?;
    if settings.shard.is_some() {
        bail!(
            "--push-to-hub and --shard: a shard is a part of the dataset\nhint: push the whole once every shard is done: `rejudge merge OUTPUT`, then `rejudge push OUTPUT {repo}`"
        );
    }
    let options = options(settings.hf_token_env.as_deref())?;
    if options.offline {
        bail!(
            "--push-to-hub needs the network, and HF_HUB_OFFLINE is set\nhint: unset HF_HUB_OFFLINE, or run without --push-to-hub and push later with `rejudge push OUTPUT ORG/NAME`"
        );
    }
    if options.token.is_none() {
        bail!(
            "--push-to-hub needs a Hub token with write access\nhint: set HF_TOKEN (or name another variable with --hf-token-env)"
        );
    }
    Ok(())
}

/// "1 file", "5 files".
fn files(count: usize) -> String {
    if count == 1 {
        "1 file".to_owned()
    } else {
        format!("{count} files")
    }
}

fn repo_id(repo: &str) -> Result<RepoId> {
    RepoId::new(RepoKind::Dataset, repo).map_err(|problem| {
        anyhow::anyhow!(
            "--push-to-hub {repo}: {problem}\nhint: ORG/NAME, e.g. my-org/prefs-rejudged"
        )
    })
}

/// Pushes the output folder after a run that finished with every row done.
pub fn push_after_run(settings: &Settings, finish: &Finish) -> Result<()> {
    let Some(repo) = &settings.push_to_hub else {
        return Ok(());
    };
    if matches!(finish, Finish::FailedRows) {
        eprintln!(
            "not pushed to {repo}: some rows failed; run the same command to retry them and push"
        );
        return Ok(());
    }
    let request = PushRequest {
        folder: settings.output.clone(),
        repo: repo_id(repo)?,
        private: settings.private,
        branch: settings.revision.clone(),
        journal: settings.push_journal.then(|| settings.journal.clone()),
        message: message(&settings.output),
    };
    let options = options(settings.hf_token_env.as_deref())?;
    let outcome = runtime()?.block_on(push(&options, &request)).with_context(|| {
        format!(
            "the run finished, but pushing {} failed\nhint: run `rejudge push {} {repo}` (or the same command) to finish the upload",
            settings.output.display(),
            settings.output.display()
        )
    })?;
    print_outcome(&outcome);
    Ok(())
}

/// `rejudge push OUTPUT ORG/NAME`.
pub fn push_command(arguments: &PushArguments) -> Result<Finish> {
    let journal = arguments.push_journal.then(|| {
        arguments
            .journal
            .clone()
            .unwrap_or_else(|| arguments.output.join("journal.sqlite"))
    });
    if arguments.journal.is_some() && !arguments.push_journal {
        bail!("--journal names the journal for --push-journal; give both, or neither");
    }
    let request = PushRequest {
        folder: arguments.output.clone(),
        repo: repo_id(&arguments.repo)?,
        private: arguments.private,
        branch: arguments.revision.clone(),
        journal,
        message: message(&arguments.output),
    };
    let options = options(arguments.hf_token_env.as_deref())?;
    let outcome = runtime()?.block_on(push(&options, &request))?;
    print_outcome(&outcome);
    Ok(Finish::Complete)
}

/// A commit hash cut to twelve characters, as Git shows it.
fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

fn message(folder: &Path) -> String {
    let name = folder.file_name().map_or_else(
        || "output".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    format!("Upload {name} (rejudge {})", env!("CARGO_PKG_VERSION"))
}

fn print_outcome(outcome: &PushOutcome) {
    match &outcome.commit {
        None => println!(
            "{} already holds these {} files; nothing to push",
            outcome.url,
            outcome.unchanged.len()
        ),
        Some(commit) => println!(
            "pushed {} to {} in commit {} ({} unchanged, {} deleted; {} LFS objects uploaded, {} already on the Hub)",
            files(outcome.changed.len()),
            outcome.url,
            short(commit),
            outcome.unchanged.len(),
            outcome.deleted.len(),
            outcome.lfs_uploaded,
            outcome.lfs_present
        ),
    }
}
