//! Building the judge the settings name, with what only the command line may read: API keys
//! and the Hugging Face environment.

use anyhow::{Context, Result, bail};
use rejudge::judge::openai::ApiKey;
use rejudge::judge::{AnyJudge, Judge, OpenAiConfig, OpenAiJudge};
use rejudge::run::Prices;
use rejudge::settings::{JudgeEntry, Settings};

/// Every judge a run uses: the panel (one judge unless the config file lists `[[judges]]`) and
/// the escalation judge.
pub struct Panel {
    /// Each judge with its weight and its own prices.
    pub members: Vec<(AnyJudge, f64, Option<Prices>)>,
    /// The escalation judge, its threshold and its own prices.
    pub escalation: Option<(AnyJudge, f64, Option<Prices>)>,
}

/// A judge entry's own prices, when it names either.
fn entry_prices(input: Option<f64>, output: Option<f64>) -> Option<Prices> {
    (input.is_some() || output.is_some()).then(|| Prices {
        input: input.unwrap_or(0.0),
        output: output.unwrap_or(0.0),
    })
}

impl Panel {
    /// The judges as the pipeline takes them.
    pub fn judges(&self, max_spread: Option<f64>) -> rejudge::run::Judges<'_, AnyJudge> {
        rejudge::run::Judges {
            members: self
                .members
                .iter()
                .map(|(judge, weight, prices)| rejudge::run::Member {
                    judge,
                    weight: *weight,
                    prices: *prices,
                })
                .collect(),
            max_spread,
            escalation: self.escalation.as_ref().map(|(judge, below, prices)| {
                rejudge::run::Escalation {
                    judge,
                    below: *below,
                    prices: *prices,
                }
            }),
        }
    }
}

/// Builds the panel the settings describe.
pub async fn panel(settings: &Settings) -> Result<Panel> {
    let members = match &settings.judges {
        None => vec![(build(settings).await?, 1.0, None)],
        Some(_) if settings.base_url.is_some() || settings.model_file.is_some() => bail!(
            "the config file lists [[judges]] and a judge is also given with --base-url or --model-file\nhint: keep one of them"
        ),
        Some(entries) if entries.is_empty() => bail!("[[judges]] lists no judge"),
        Some(entries) => {
            let mut members = Vec::with_capacity(entries.len());
            for entry in entries {
                if !(entry.weight.is_finite() && entry.weight > 0.0) {
                    bail!(
                        "[[judges]] weight = {}: a weight must be a positive number",
                        entry.weight
                    );
                }
                let prices = entry_prices(entry.price_input, entry.price_output);
                members.push((
                    build(&with_judge(settings, entry)).await?,
                    entry.weight,
                    prices,
                ));
            }
            members
        }
    };
    let escalation = match &settings.escalation {
        Some(escalation) => {
            if !(escalation.below.is_finite() && escalation.below >= 0.0) {
                bail!(
                    "[escalation] below = {}: a margin must be 0 or more",
                    escalation.below
                );
            }
            let judge = build(&with_judge(settings, &escalation.judge())).await?;
            let prices = entry_prices(escalation.price_input, escalation.price_output);
            Some((judge, escalation.below, prices))
        }
        None => None,
    };
    Ok(Panel {
        members,
        escalation,
    })
}

/// The settings with `entry`'s judge in place of the main one.
fn with_judge(settings: &Settings, entry: &JudgeEntry) -> Settings {
    let mut one = settings.clone();
    one.base_url.clone_from(&entry.base_url);
    one.model.clone_from(&entry.model);
    one.model_file.clone_from(&entry.model_file);
    one.api_key_env.clone_from(&entry.api_key_env);
    one.judges = None;
    one.escalation = None;
    one.endpoint = None;
    one
}

/// The judge: a pool when endpoints are listed, an OpenAI-compatible server when a base URL is
/// set, else in-process.
pub async fn build(settings: &Settings) -> Result<AnyJudge> {
    if let Some(endpoints) = settings.endpoint.as_ref().filter(|e| !e.is_empty()) {
        return pool(settings, endpoints);
    }
    if settings.base_url.is_none() {
        return local(settings).await;
    }
    openai(settings)
}

/// The OpenAI-compatible judge at `--base-url`.
pub fn openai(settings: &Settings) -> Result<AnyJudge> {
    let Some(base_url) = &settings.base_url else {
        bail!("--base-url is required for this judge");
    };
    if settings.model_file.is_some() {
        bail!("--base-url and --model-file pick different judges; give one of them");
    }
    let model = settings.model.clone().context(
        "--model is required with --base-url\nhint: the model name the server serves, e.g. meta-llama/Llama-3.1-70B-Instruct",
    )?;
    let config = OpenAiConfig {
        base_url: base_url.clone(),
        model,
        api_key: api_key(settings.api_key_env.as_deref(), base_url)?,
        sampling: settings.sampling(),
        timeout: settings.timeout(),
        structured_output: true,
        max_response_bytes: settings.max_response_bytes,
    };
    Ok(AnyJudge::OpenAi(OpenAiJudge::new(config)?))
}

/// A pool of the listed endpoints, all serving `--model`.
fn pool(settings: &Settings, endpoints: &[rejudge::settings::EndpointEntry]) -> Result<AnyJudge> {
    use rejudge::judge::{Endpoint, PoolJudge, openai::without_credentials};
    if settings.base_url.is_some() || settings.model_file.is_some() {
        bail!(
            "a pool of endpoints and --base-url or --model-file pick different judges; give one of them"
        );
    }
    let model = settings.model.clone().context(
        "--model is required with a pool of endpoints\nhint: the model name every endpoint serves",
    )?;
    let mut members = Vec::with_capacity(endpoints.len());
    for entry in endpoints {
        if !(entry.weight.is_finite() && entry.weight > 0.0) {
            bail!(
                "[[endpoint]] weight = {}: a weight must be a positive number",
                entry.weight
            );
        }
        let key_variable = entry
            .api_key_env
            .as_deref()
            .or(settings.api_key_env.as_deref());
        let config = OpenAiConfig {
            base_url: entry.url.clone(),
            model: model.clone(),
            api_key: api_key(key_variable, &entry.url)?,
            sampling: settings.sampling(),
            timeout: settings.timeout(),
            structured_output: true,
            max_response_bytes: settings.max_response_bytes,
        };
        let concurrency = entry.concurrency.unwrap_or(settings.concurrency);
        let shown = without_credentials(&entry.url);
        members.push(Endpoint::new(
            OpenAiJudge::new(config)?,
            shown,
            entry.weight,
            concurrency,
        ));
    }
    Ok(AnyJudge::Pool(PoolJudge::new(members)))
}

/// A variable's value, `None` when unset or blank.
pub fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(feature = "local")]
async fn local(settings: &Settings) -> Result<AnyJudge> {
    use rejudge::judge::local::{LocalConfig, LocalJudge, resolve_model};
    let hub = super::hub::options(settings.hf_token_env.as_deref())?;
    let path = resolve_model(settings.model_file.as_deref(), &hub).await?;
    let config = LocalConfig {
        model_path: path,
        sampling: settings.sampling(),
        threads: settings
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        context_size: settings.context_size,
        sequences: settings.concurrency.clamp(1, 8),
    };
    Ok(AnyJudge::Local(LocalJudge::start(config)?))
}

#[cfg(not(feature = "local"))]
#[allow(clippy::unused_async)]
async fn local(_settings: &Settings) -> Result<AnyJudge> {
    bail!(
        "this rejudge was built without the in-process judge\nhint: pass --base-url and --model for an OpenAI-compatible server, or build with the `local` feature"
    )
}

/// Counts prompt tokens with the in-process judge's own tokenizer, for `--dry-run`; `None` for
/// a judge behind a server, or when no model file is at hand (the count is then estimated).
pub type TokenCounter = Box<dyn Fn(&[rejudge::prompt::ChatMessage]) -> Option<u64>>;

/// The token counter for the settings' judge, if it is in-process and its model is local.
#[cfg(feature = "local")]
pub fn token_counter(settings: &Settings) -> Result<Option<TokenCounter>> {
    use rejudge::judge::local::{LocalConfig, LocalJudge};
    let local_file = settings
        .model_file
        .as_deref()
        .filter(|file| !file.starts_with("hf://"))
        .map(std::path::PathBuf::from)
        .filter(|path| path.is_file());
    let (None, Some(model_path)) = (&settings.base_url, local_file) else {
        return Ok(None);
    };
    let config = LocalConfig {
        model_path,
        sampling: settings.sampling(),
        threads: 1,
        context_size: settings.context_size,
        sequences: 1,
    };
    let judge = LocalJudge::start(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(Some(Box::new(move |messages| {
        runtime
            .block_on(judge.count_tokens(messages))
            .map(|n| n as u64)
    })))
}

/// Without the in-process judge, prompt tokens are always estimated.
#[cfg(not(feature = "local"))]
#[allow(clippy::unnecessary_wraps)]
pub fn token_counter(_settings: &Settings) -> Result<Option<TokenCounter>> {
    Ok(None)
}

/// Whether the judges include the tiny model the demo and tests use.
pub fn is_demo_model(panel: &Panel) -> bool {
    panel
        .members
        .iter()
        .map(|(judge, _, _)| judge)
        .chain(panel.escalation.iter().map(|(judge, _, _)| judge))
        .any(|judge| judge.model().contains("gemma-3-270m"))
}

/// The API key from the named variable, else `OPENAI_API_KEY`, else `HF_TOKEN` for Hugging Face
/// hosts only: a Hub token must not reach any other server unasked. Never printed.
pub fn api_key(name: Option<&str>, base_url: &str) -> Result<Option<ApiKey>> {
    match name {
        Some(name) => match variable(name) {
            Some(key) => Ok(Some(ApiKey::new(key))),
            None => bail!("--api-key-env {name}: the variable is not set or empty"),
        },
        None => Ok(variable("OPENAI_API_KEY")
            .or_else(|| {
                variable("HF_TOKEN").filter(|_| rejudge::secrets::is_hugging_face(base_url))
            })
            .map(ApiKey::new)),
    }
}
