//! Building the judge the settings name, with what only the command line may read: API keys
//! and the Hugging Face environment.

use anyhow::{Context, Result, bail};
use rejudge::judge::openai::ApiKey;
use rejudge::judge::{AnyJudge, Judge, OpenAiConfig, OpenAiJudge};
use rejudge::settings::Settings;

/// The judge: an OpenAI-compatible server when a base URL is set, else in-process.
pub async fn build(settings: &Settings) -> Result<AnyJudge> {
    let Some(base_url) = &settings.base_url else {
        return local(settings).await;
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

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(feature = "local")]
async fn local(settings: &Settings) -> Result<AnyJudge> {
    use rejudge::judge::local::{HubOptions, LocalConfig, LocalJudge, resolve_model};
    let hub = HubOptions {
        token: variable("HF_TOKEN"),
        offline: variable("HF_HUB_OFFLINE")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        cache: variable("HF_HUB_CACHE")
            .map(std::path::PathBuf::from)
            .or_else(|| variable("HF_HOME").map(|home| std::path::PathBuf::from(home).join("hub"))),
        endpoint: variable("HF_ENDPOINT"),
    };
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

/// Whether the judge is the tiny model the demo and tests use.
pub fn is_demo_model(judge: &AnyJudge) -> bool {
    judge.model().contains("gemma-3-270m")
}

/// The API key from the named variable, else `OPENAI_API_KEY`, else `HF_TOKEN` for Hugging Face
/// hosts only: a Hub token must not reach any other server unasked. Never printed.
fn api_key(name: Option<&str>, base_url: &str) -> Result<Option<ApiKey>> {
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
