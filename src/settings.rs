//! Settings in layers: command-line flags, then environment variables, then a TOML config file
//! (the same keys as the flags), then defaults, resolved and checked into one plain [`Settings`]
//! before any work starts. Every run writes its settings back to `OUTPUT/rejudge.toml`, so that
//! `rejudge rerank --config OUTPUT/rejudge.toml` repeats it.
//!
//! Secrets are never settings: the config names the variable that holds the API key
//! (`api-key-env`), never the key.

use crate::dataset::{ColumnOverrides, OutputFormat};
use crate::judge::{RetryPolicy, Sampling, Scoring};
use crate::prompt::{Mode, Order};
use crate::run::RunConfig;
use crate::verdict::{DecisionPolicy, Inconsistent};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Requests in flight by default.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Seconds per attempt by default.
pub const DEFAULT_TIMEOUT: f64 = 120.0;
/// Attempts per request by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// Completion tokens per answer by default.
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Tokens of context per sequence of the in-process judge by default.
pub const DEFAULT_CONTEXT_SIZE: u32 = 4096;
/// The largest response body read by default: a judgment is a few kilobytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The rubric language: detected from the prompts, or given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LanguageChoice {
    /// Guessed from the first prompts.
    #[default]
    Auto,
    /// English.
    En,
    /// Italian.
    It,
}

/// One layer of settings: every key optional. The config file is parsed into this; the command
/// line and the environment are turned into it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(missing_docs)] // Each key is documented by its command-line flag.
pub struct SettingsLayer {
    pub input: Option<String>,
    pub output: Option<PathBuf>,
    pub format: Option<OutputFormat>,
    pub journal: Option<PathBuf>,
    pub prompt_column: Option<String>,
    pub chosen_column: Option<String>,
    pub rejected_column: Option<String>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub model_file: Option<String>,
    pub threads: Option<usize>,
    pub context_size: Option<u32>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub seed: Option<u64>,
    pub scoring: Option<Scoring>,
    pub mode: Option<Mode>,
    pub on_inconsistent: Option<Inconsistent>,
    pub lang: Option<LanguageChoice>,
    pub template: Option<PathBuf>,
    pub order: Option<Order>,
    pub tie_margin: Option<f64>,
    pub concurrency: Option<usize>,
    pub timeout: Option<f64>,
    pub max_attempts: Option<u32>,
    pub limit: Option<u64>,
    pub max_response_bytes: Option<usize>,
    pub calibration: Option<PathBuf>,
    pub gold_column: Option<String>,
    pub category_column: Option<String>,
    pub target_agreement: Option<f64>,
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
    pub fixed_concurrency: Option<bool>,
    pub price_input: Option<f64>,
    pub price_output: Option<f64>,
    pub max_cost: Option<f64>,
    /// The part of the input to judge (`I/N`, resolved from the scheduler's environment by the
    /// command line for `--shard auto`).
    pub shard: Option<crate::run::Shard>,
    /// A pool of endpoints serving the judge's model (`--base-url` given several times).
    pub endpoint: Option<Vec<EndpointEntry>>,
    // The Hugging Face Hub: hf:// inputs and pushes.
    pub subset: Option<String>,
    pub split: Option<String>,
    pub push_to_hub: Option<String>,
    pub private: Option<bool>,
    pub revision: Option<String>,
    pub push_journal: Option<bool>,
    pub hf_token_env: Option<String>,
    /// A panel: several judges, each a table of its own (config file only).
    pub judges: Option<Vec<JudgeEntry>>,
    /// How a panel combines (config file only).
    pub panel: Option<PanelSettings>,
    /// A stronger judge for the rows left near a tie (config file only).
    pub escalation: Option<EscalationSettings>,
}

/// One endpoint of a pool: an OpenAI-compatible API root serving the judge's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EndpointEntry {
    /// The API root.
    pub url: String,
    /// Its share of the requests, relative to the other endpoints'.
    #[serde(default = "one")]
    pub weight: f64,
    /// Requests in flight at this endpoint at most [default: `concurrency`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// The environment variable holding this endpoint's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// One judge of a panel, or the escalation judge: an OpenAI-compatible endpoint (`base-url` and
/// `model`) or an in-process model (`model-file`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JudgeEntry {
    /// The API root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model the server serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A GGUF file for an in-process judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
    /// The environment variable holding this judge's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Its weight in the panel's average.
    #[serde(default = "one")]
    pub weight: f64,
    /// Its price per million prompt tokens, when it differs from `price-input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_input: Option<f64>,
    /// Its price per million completion tokens, when it differs from `price-output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_output: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// How a panel's judges are combined.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PanelSettings {
    /// Judges whose decision values lie further apart than this make the row a tie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_spread: Option<f64>,
}

/// The judge that decides the rows the first judge (or panel) leaves near a tie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EscalationSettings {
    /// Rows whose margin is at most this go to the escalation judge.
    pub below: f64,
    /// The API root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model the server serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A GGUF file for an in-process judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
    /// The environment variable holding its API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Its price per million prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_input: Option<f64>,
    /// Its price per million completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_output: Option<f64>,
}

impl EscalationSettings {
    /// The escalation judge as a judge entry.
    pub fn judge(&self) -> JudgeEntry {
        JudgeEntry {
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            model_file: self.model_file.clone(),
            api_key_env: self.api_key_env.clone(),
            weight: 1.0,
            price_input: self.price_input,
            price_output: self.price_output,
        }
    }
}

macro_rules! over {
    ($upper:expr, $lower:expr, $($field:ident),+) => {
        SettingsLayer { $($field: $upper.$field.or($lower.$field)),+ }
    };
}

impl SettingsLayer {
    /// This layer with the gaps filled from `lower`.
    pub fn over(self, lower: SettingsLayer) -> SettingsLayer {
        over!(
            self,
            lower,
            input,
            output,
            format,
            journal,
            prompt_column,
            chosen_column,
            rejected_column,
            base_url,
            model,
            api_key_env,
            model_file,
            threads,
            context_size,
            temperature,
            max_tokens,
            seed,
            scoring,
            mode,
            on_inconsistent,
            lang,
            template,
            order,
            tie_margin,
            concurrency,
            timeout,
            max_attempts,
            limit,
            max_response_bytes,
            calibration,
            gold_column,
            category_column,
            target_agreement,
            rpm,
            tpm,
            fixed_concurrency,
            price_input,
            price_output,
            max_cost,
            shard,
            endpoint,
            // Hugging Face Hub
            subset,
            split,
            push_to_hub,
            private,
            revision,
            push_journal,
            hf_token_env,
            judges,
            panel,
            escalation
        )
    }

    /// Reads a config file; unknown keys are refused.
    pub fn from_file(path: &Path) -> Result<SettingsLayer, SettingsError> {
        let text = fs_err::read_to_string(path)?;
        toml::from_str(&text).map_err(|source| SettingsError::Config {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Errors in settings: a bad value, a missing input, an unreadable config file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value is out of range or not a number.
    #[error("--{key} {value}: {expected}")]
    Invalid {
        /// The flag or config key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// No input was given on the command line or in the config file.
    #[error("no input given\nhint: rejudge rerank INPUT, or `input = \"...\"` in the config file")]
    MissingInput,
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path}", path = path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's error, with the line.
        #[source]
        source: toml::de::Error,
    },
    /// A config file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The resolved settings of a run: every value decided and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)] // Each key is documented by its command-line flag.
pub struct Settings {
    pub input: String,
    pub output: PathBuf,
    pub format: OutputFormat,
    pub journal: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    pub context_size: u32,
    pub temperature: f64,
    pub max_tokens: u32,
    pub seed: u64,
    pub scoring: Scoring,
    pub mode: Mode,
    pub on_inconsistent: Inconsistent,
    pub lang: LanguageChoice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
    pub order: Order,
    pub tie_margin: f64,
    pub concurrency: usize,
    pub timeout: f64,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    pub max_response_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<f64>,
    pub fixed_concurrency: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_input: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_output: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    // The Hugging Face Hub: hf:// inputs and pushes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_to_hub: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub push_journal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hf_token_env: Option<String>,
    // Tables last: TOML writes plain keys before tables. The shard is left out: the written
    // settings describe the whole job, and each shard is started with its own `--shard`.
    #[serde(skip_serializing)]
    pub shard: Option<crate::run::Shard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panel: Option<PanelSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judges: Option<Vec<JudgeEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Vec<EndpointEntry>>,
}

/// The journal in the output folder. Shards share the folder but not a journal: SQLite is not
/// for several writers on a network file system.
fn default_journal(output: &Path, shard: Option<crate::run::Shard>) -> PathBuf {
    match shard {
        Some(shard) => output.join(format!("journal-{}.sqlite", shard.label())),
        None => output.join("journal.sqlite"),
    }
}

impl Settings {
    /// Resolves a layer (flags over environment over config file) with the defaults, checking
    /// every value.
    #[allow(clippy::too_many_lines, reason = "one line per setting")]
    pub fn resolve(layer: SettingsLayer) -> Result<Settings, SettingsError> {
        let input = layer.input.ok_or(SettingsError::MissingInput)?;
        let output = layer.output.unwrap_or_else(|| default_output(&input));
        let journal = layer
            .journal
            .unwrap_or_else(|| default_journal(&output, layer.shard));
        let settings = Settings {
            input,
            journal,
            output,
            format: layer.format.unwrap_or_default(),
            prompt_column: layer.prompt_column,
            chosen_column: layer.chosen_column,
            rejected_column: layer.rejected_column,
            base_url: layer.base_url,
            model: layer.model,
            api_key_env: layer.api_key_env,
            model_file: layer.model_file,
            threads: layer.threads,
            context_size: layer.context_size.unwrap_or(DEFAULT_CONTEXT_SIZE),
            temperature: layer.temperature.unwrap_or(0.0),
            max_tokens: layer.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            seed: layer.seed.unwrap_or(0),
            scoring: layer.scoring.unwrap_or_default(),
            mode: layer.mode.unwrap_or_default(),
            on_inconsistent: layer.on_inconsistent.unwrap_or_default(),
            lang: layer.lang.unwrap_or_default(),
            template: layer.template,
            order: layer.order.unwrap_or(Order::Random),
            tie_margin: layer.tie_margin.unwrap_or(0.0),
            concurrency: layer.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            timeout: layer.timeout.unwrap_or(DEFAULT_TIMEOUT),
            max_attempts: layer.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            limit: layer.limit,
            max_response_bytes: layer
                .max_response_bytes
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            calibration: layer.calibration,
            gold_column: layer.gold_column,
            category_column: layer.category_column,
            target_agreement: layer.target_agreement,
            rpm: layer.rpm,
            tpm: layer.tpm,
            fixed_concurrency: layer.fixed_concurrency.unwrap_or(false),
            price_input: layer.price_input,
            price_output: layer.price_output,
            max_cost: layer.max_cost,
            shard: layer.shard,
            // Hugging Face Hub
            subset: layer.subset,
            split: layer.split,
            push_to_hub: layer.push_to_hub,
            private: layer.private.unwrap_or(false),
            revision: layer.revision,
            push_journal: layer.push_journal.unwrap_or(false),
            hf_token_env: layer.hf_token_env,
            panel: layer.panel,
            escalation: layer.escalation,
            judges: layer.judges,
            endpoint: layer.endpoint,
        };
        settings.check()?;
        Ok(settings)
    }

    /// Every number with its range: (key, value, lowest, highest, what is accepted).
    fn number_ranges(&self) -> [(&'static str, f64, f64, f64, &'static str); 9] {
        let dollars = "US dollars, 0 or more";
        let per_million = "US dollars per million tokens, 0 or more";
        let agreement = self.target_agreement.unwrap_or(0.5);
        let (rpm, tpm) = (self.rpm.unwrap_or(1.0), self.tpm.unwrap_or(1.0));
        let (input, output) = (
            self.price_input.unwrap_or(0.0),
            self.price_output.unwrap_or(0.0),
        );
        [
            (
                "timeout",
                self.timeout,
                0.001,
                86_400.0,
                "seconds from 0.001 to 86400",
            ),
            (
                "temperature",
                self.temperature,
                0.0,
                2.0,
                "a number from 0 to 2",
            ),
            (
                "tie-margin",
                self.tie_margin,
                0.0,
                4.0,
                "a score difference from 0 to 4",
            ),
            (
                "target-agreement",
                agreement,
                0.5,
                1.0,
                "an agreement from 0.5 to 1",
            ),
            ("rpm", rpm, 0.01, 1e9, "requests per minute, more than 0"),
            ("tpm", tpm, 1.0, 1e12, "tokens per minute, at least 1"),
            ("price-input", input, 0.0, 1e6, per_million),
            ("price-output", output, 0.0, 1e6, per_million),
            ("max-cost", self.max_cost.unwrap_or(0.0), 0.0, 1e9, dollars),
        ]
    }

    fn check(&self) -> Result<(), SettingsError> {
        for (key, value, low, high, expected) in self.number_ranges() {
            if !(value.is_finite() && (low..=high).contains(&value)) {
                return Err(SettingsError::Invalid {
                    key,
                    value: value.to_string(),
                    expected: expected.to_owned(),
                });
            }
        }
        self.check_whole_numbers()
    }

    fn check_whole_numbers(&self) -> Result<(), SettingsError> {
        let whole = [
            ("concurrency", Some(self.concurrency as u64), 1, 4096),
            ("max-attempts", Some(self.max_attempts.into()), 1, 100),
            ("max-tokens", Some(self.max_tokens.into()), 1, 1 << 20),
            ("context-size", Some(self.context_size.into()), 256, 1 << 20),
            ("threads", self.threads.map(|t| t as u64), 1, 1024),
            ("limit", self.limit, 1, u64::MAX),
            (
                "max-response-bytes",
                Some(self.max_response_bytes as u64),
                1 << 10,
                1 << 30,
            ),
        ];
        for (key, value, low, high) in whole {
            if let Some(value) = value.filter(|value| !(low..=high).contains(value)) {
                let expected = if high == u64::MAX {
                    format!("a whole number from {low}")
                } else {
                    format!("a whole number from {low} to {high}")
                };
                return Err(SettingsError::Invalid {
                    key,
                    value: value.to_string(),
                    expected,
                });
            }
        }
        Ok(())
    }

    /// The settings as the TOML a config file holds: every key, no secrets.
    pub fn to_toml(&self) -> String {
        let mut stored = self.clone();
        let shown = |url: &mut Option<String>| {
            *url = url
                .as_deref()
                .map(crate::judge::openai::without_credentials);
        };
        shown(&mut stored.base_url);
        for judge in stored.judges.iter_mut().flatten() {
            shown(&mut judge.base_url);
        }
        for endpoint in stored.endpoint.iter_mut().flatten() {
            endpoint.url = crate::judge::openai::without_credentials(&endpoint.url);
        }
        if let Some(escalation) = &mut stored.escalation {
            shown(&mut escalation.base_url);
        }
        let body = toml::to_string(&stored).expect("settings serialise to TOML; this is a bug");
        format!(
            "# The settings of this rejudge run; `rejudge rerank --config FILE` repeats it.\n{body}"
        )
    }

    /// What the pipeline needs.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            input: self.input.clone(),
            output: self.output.clone(),
            format: self.format,
            journal: self.journal.clone(),
            concurrency: self.concurrency,
            limit: self.limit,
            order: self.order,
            seed: self.seed,
            policy: DecisionPolicy {
                tie_margin: self.tie_margin,
                on_inconsistent: self.on_inconsistent,
            },
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                ..RetryPolicy::default()
            },
            settings: Some(self.to_toml()),
            scoring: self.scoring,
            calibration: None,
            pacing: crate::judge::Pacing {
                requests_per_minute: self.rpm,
                tokens_per_minute: self.tpm,
                concurrency: self.concurrency,
                adaptive: !self.fixed_concurrency,
                completion_allowance: u64::from(self.max_tokens),
            },
            prices: self.prices(),
            max_cost: self.max_cost,
            shard: self.shard,
        }
    }

    /// The judge's prices, when either is given.
    pub fn prices(&self) -> Option<crate::run::Prices> {
        (self.price_input.is_some() || self.price_output.is_some()).then(|| crate::run::Prices {
            input: self.price_input.unwrap_or(0.0),
            output: self.price_output.unwrap_or(0.0),
        })
    }

    /// The sampling settings every judge sends.
    pub fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: Some(self.seed),
            scoring: self.scoring,
            mode: self.mode,
        }
    }

    /// The time allowed for one attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// The column names given by the user.
    pub fn column_overrides(&self) -> ColumnOverrides {
        ColumnOverrides {
            prompt: self.prompt_column.clone(),
            chosen: self.chosen_column.clone(),
            rejected: self.rejected_column.clone(),
            gold: self.gold_column.clone(),
            category: self.category_column.clone(),
        }
    }
}

/// `INPUT's name + "-rejudged"`, in the current folder.
fn default_output(input: &str) -> PathBuf {
    output_named(input, "rejudged")
}

/// `INPUT's name + "-" + suffix`, in the current folder: the default output of a command.
pub fn output_named(input: &str, suffix: &str) -> PathBuf {
    // An hf://datasets/ORG/NAME[@REVISION] input is named by NAME.
    let hub_name = crate::hub::DatasetAddress::parse(input).map(|a| a.repo.name().to_owned());
    let input = hub_name.as_deref().unwrap_or(input);
    let stem = Path::new(input.trim_end_matches('/'))
        .file_stem()
        .map_or_else(|| "dataset".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}-{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(input: &str) -> SettingsLayer {
        SettingsLayer {
            input: Some(input.into()),
            ..SettingsLayer::default()
        }
    }

    #[test]
    fn upper_layers_win_and_defaults_fill_the_rest() {
        let flags = SettingsLayer {
            concurrency: Some(4),
            ..layer("a.jsonl")
        };
        let file = SettingsLayer {
            concurrency: Some(8),
            tie_margin: Some(0.5),
            ..layer("b.jsonl")
        };
        let settings = Settings::resolve(flags.over(file)).unwrap();
        assert_eq!(settings.input, "a.jsonl");
        assert_eq!((settings.concurrency, settings.tie_margin), (4, 0.5));
        assert_eq!(settings.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(settings.output, PathBuf::from("a-rejudged"));
        assert_eq!(settings.journal, PathBuf::from("a-rejudged/journal.sqlite"));
    }

    #[test]
    fn the_written_settings_resolve_to_the_same_settings() {
        let settings = Settings::resolve(SettingsLayer {
            base_url: Some("http://localhost:8000/v1".into()),
            model: Some("m".into()),
            order: Some(Order::Both),
            limit: Some(3),
            ..layer("data/pairs.parquet")
        })
        .unwrap();
        let text = settings.to_toml();
        let again = Settings::resolve(toml::from_str(&text).unwrap()).unwrap();
        assert_eq!(again, settings);
        assert!(text.contains("order = \"both\""), "{text}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<SettingsLayer>("concurency = 3").is_err());
        for (bad, key) in [
            (
                SettingsLayer {
                    timeout: Some(f64::INFINITY),
                    ..layer("x")
                },
                "timeout",
            ),
            (
                SettingsLayer {
                    timeout: Some(0.0),
                    ..layer("x")
                },
                "timeout",
            ),
            (
                SettingsLayer {
                    temperature: Some(f64::NAN),
                    ..layer("x")
                },
                "temperature",
            ),
            (
                SettingsLayer {
                    tie_margin: Some(-1.0),
                    ..layer("x")
                },
                "tie-margin",
            ),
            (
                SettingsLayer {
                    concurrency: Some(0),
                    ..layer("x")
                },
                "concurrency",
            ),
            (
                SettingsLayer {
                    max_attempts: Some(0),
                    ..layer("x")
                },
                "max-attempts",
            ),
        ] {
            let error = Settings::resolve(bad).unwrap_err().to_string();
            assert!(error.starts_with(&format!("--{key} ")), "{error}");
        }
        assert!(matches!(
            Settings::resolve(SettingsLayer::default()),
            Err(SettingsError::MissingInput)
        ));
    }
}
