//! Command-line flags and their resolution, with the environment, into the library's settings.

mod progress;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rejudge::dataset::{ColumnOverrides, OutputFormat};
use rejudge::judge::openai::ApiKey;
use rejudge::judge::{AnyJudge, OpenAiConfig, OpenAiJudge, RetryPolicy, Sampling, Scoring};
use rejudge::prompt::{Language, Order, PromptBuilder};
use rejudge::run::{Input, RunConfig, dry_run, rerank};
use rejudge::verdict::DecisionPolicy;
use std::path::PathBuf;
use std::time::Duration;

/// Re-rank preference datasets with an LLM judge: swap wrong pairs, flag ties, keep every row.
#[derive(Debug, Parser)]
#[command(name = "rejudge", version, about)]
pub struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rate both responses of every pair, swap the pairs the judge prefers the other way round,
    /// flag ties, and write the re-ranked dataset with a report.
    Rerank(Box<RerankArguments>),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LanguageFlag {
    Auto,
    En,
    It,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatFlag {
    Parquet,
    Jsonl,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderFlag {
    /// A seeded coin per row decides.
    Random,
    /// Every pair twice, once in each order, scores averaged (twice the requests).
    Both,
    ChosenFirst,
    RejectedFirst,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScoringFlag {
    Score,
    Logprobs,
}

#[derive(Debug, clap::Args)]
struct RerankArguments {
    /// The dataset: .jsonl, .json, .parquet, .csv, or a folder of Parquet shards.
    input: PathBuf,

    /// Output folder [default: INPUT's name + "-rejudged", in the current folder].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Output data format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatFlag,
    /// Journal file [default: OUTPUT/journal.sqlite].
    #[arg(long)]
    journal: Option<PathBuf>,

    /// Column holding the prompt [default: detected].
    #[arg(long)]
    prompt_column: Option<String>,
    /// Column holding the chosen response [default: detected].
    #[arg(long)]
    chosen_column: Option<String>,
    /// Column holding the rejected response [default: detected].
    #[arg(long)]
    rejected_column: Option<String>,

    /// OpenAI-compatible API root, e.g. http://localhost:8000/v1 (vLLM, llama.cpp, Ollama,
    /// https://router.huggingface.co/v1). Without it, the judge runs in-process.
    #[arg(long)]
    base_url: Option<String>,
    /// Model name sent to the server.
    #[arg(long)]
    model: Option<String>,
    /// Environment variable holding the API key [default: OPENAI_API_KEY, then HF_TOKEN].
    #[arg(long)]
    api_key_env: Option<String>,
    /// A GGUF model for the in-process judge: a path or hf://ORG/REPO/FILE.gguf
    /// [default: $REJUDGE_MODEL_FILE, else the default model from the Hugging Face Hub].
    #[arg(long)]
    model_file: Option<String>,
    /// Threads for the in-process judge [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Context size per sequence for the in-process judge.
    #[arg(long, default_value_t = 4096)]
    context_size: u32,

    /// Sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Most tokens the judge may write per answer.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Sampling seed; also seeds the random order of responses.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How scores are read: the written digit, or the expected score under the judge's
    /// log-probabilities (continuous, fewer false ties).
    #[arg(long, value_enum, default_value = "score")]
    scoring: ScoringFlag,
    /// Rubric language.
    #[arg(long, value_enum, default_value = "auto")]
    lang: LanguageFlag,
    /// A minijinja template for the judge's instruction (variables: system, history, prompt,
    /// response_a, response_b).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Which stored response the judge sees first; `both` judges every pair in both orders and
    /// averages, which removes position bias at twice the cost.
    #[arg(long, value_enum, default_value = "random")]
    order: OrderFlag,
    /// Score differences up to this size count as ties.
    #[arg(long, default_value_t = 0.0)]
    tie_margin: f64,

    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds allowed for one request attempt.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Attempts per request, the first included.
    #[arg(long, default_value_t = 6)]
    max_attempts: u32,
    /// Only the first N rows.
    #[arg(long)]
    limit: Option<u64>,
    /// Show the first rendered prompt and a token estimate; call no judge.
    #[arg(long)]
    dry_run: bool,
    /// No progress bar or progress lines.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs a parsed command line.
pub fn execute(arguments: Arguments) -> Result<()> {
    match arguments.command {
        Command::Rerank(arguments) => rerank_command(*arguments),
    }
}

fn rerank_command(arguments: RerankArguments) -> Result<()> {
    let overrides = ColumnOverrides {
        prompt: arguments.prompt_column.clone(),
        chosen: arguments.chosen_column.clone(),
        rejected: arguments.rejected_column.clone(),
    };
    let input = Input::open(&arguments.input, &overrides)?;
    let language = match arguments.lang {
        LanguageFlag::Auto => input.language(),
        LanguageFlag::En => Language::En,
        LanguageFlag::It => Language::It,
    };
    let prompt = match &arguments.template {
        None => PromptBuilder::builtin(language),
        Some(path) => {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("reading the template {}", path.display()))?;
            PromptBuilder::from_template(&path.display().to_string(), source, language)?
        }
    };
    let config = run_config(&arguments);
    if arguments.dry_run {
        return print_dry_run(input, &prompt, &config, arguments.max_tokens);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let judge = runtime.block_on(build_judge(&arguments))?;
    if is_demo_model(&judge) {
        eprintln!(
            "note: the judge is the tiny gemma-3-270m demo model; its verdicts show the pipeline working, not real quality"
        );
    }
    let progress = progress::Bar::new(arguments.quiet);
    let report = runtime.block_on(rerank(input, &prompt, &judge, &config, &progress))?;
    progress.done();
    println!("{}", report.summary_table().trim_end());
    println!(
        "wrote {} and {}",
        report.output.display(),
        config.output.join("report.json").display()
    );
    Ok(())
}

fn run_config(arguments: &RerankArguments) -> RunConfig {
    let output = arguments.output.clone().unwrap_or_else(|| {
        let stem = arguments
            .input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into());
        PathBuf::from(format!("{stem}-rejudged"))
    });
    RunConfig {
        input: arguments.input.clone(),
        journal: arguments
            .journal
            .clone()
            .unwrap_or_else(|| output.join("journal.sqlite")),
        output,
        format: match arguments.format {
            FormatFlag::Parquet => OutputFormat::Parquet,
            FormatFlag::Jsonl => OutputFormat::Jsonl,
        },
        concurrency: arguments.concurrency.max(1),
        limit: arguments.limit,
        order: match arguments.order {
            OrderFlag::Random => Order::Random,
            OrderFlag::Both => Order::Both,
            OrderFlag::ChosenFirst => Order::ChosenFirst,
            OrderFlag::RejectedFirst => Order::RejectedFirst,
        },
        seed: arguments.seed,
        policy: DecisionPolicy {
            tie_margin: arguments.tie_margin,
        },
    }
}

fn sampling(arguments: &RerankArguments) -> Sampling {
    Sampling {
        temperature: arguments.temperature,
        max_tokens: arguments.max_tokens,
        seed: Some(arguments.seed),
        scoring: match arguments.scoring {
            ScoringFlag::Score => Scoring::Score,
            ScoringFlag::Logprobs => Scoring::Logprobs,
        },
    }
}

async fn build_judge(arguments: &RerankArguments) -> Result<AnyJudge> {
    if let Some(base_url) = &arguments.base_url {
        if arguments.model_file.is_some() {
            bail!("--base-url and --model-file pick different judges; give one of them");
        }
        let model = arguments.model.clone().context("--model is required with --base-url\nhint: the model name the server serves, e.g. meta-llama/Llama-3.1-70B-Instruct")?;
        let config = OpenAiConfig {
            base_url: base_url.clone(),
            model,
            api_key: api_key(arguments.api_key_env.as_deref())?,
            sampling: sampling(arguments),
            timeout: Duration::from_secs_f64(arguments.timeout.max(0.001)),
            retry: RetryPolicy {
                max_attempts: arguments.max_attempts.max(1),
                ..RetryPolicy::default()
            },
            structured_output: true,
        };
        return Ok(AnyJudge::OpenAi(OpenAiJudge::new(config)?));
    }
    local_judge(arguments).await
}

#[cfg(feature = "local")]
async fn local_judge(arguments: &RerankArguments) -> Result<AnyJudge> {
    use rejudge::judge::local::{HubOptions, LocalConfig, LocalJudge, resolve_model};
    let source = arguments.model_file.clone().or_else(|| {
        std::env::var("REJUDGE_MODEL_FILE")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let hub = HubOptions {
        token: variable("HF_TOKEN"),
        offline: variable("HF_HUB_OFFLINE")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        cache: variable("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| variable("HF_HOME").map(|home| PathBuf::from(home).join("hub"))),
        endpoint: variable("HF_ENDPOINT"),
    };
    let path = resolve_model(source.as_deref(), &hub).await?;
    let config = LocalConfig {
        model_path: path,
        sampling: sampling(arguments),
        threads: arguments
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        context_size: arguments.context_size,
        sequences: arguments.concurrency.clamp(1, 8),
    };
    Ok(AnyJudge::Local(LocalJudge::start(config)?))
}

#[cfg(not(feature = "local"))]
async fn local_judge(_arguments: &RerankArguments) -> Result<AnyJudge> {
    bail!(
        "this rejudge was built without the in-process judge\nhint: pass --base-url and --model for an OpenAI-compatible server, or build with the `local` feature"
    )
}

fn is_demo_model(judge: &AnyJudge) -> bool {
    use rejudge::judge::Judge;
    judge.model().contains("gemma-3-270m")
}

/// The API key from the named variable, or the default ones; never printed.
fn api_key(variable: Option<&str>) -> Result<Option<ApiKey>> {
    let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match variable {
        Some(name) => match read(name) {
            Some(key) => Ok(Some(ApiKey::new(key))),
            None => bail!("--api-key-env {name}: the variable is not set or empty"),
        },
        None => Ok(read("OPENAI_API_KEY")
            .or_else(|| read("HF_TOKEN"))
            .map(ApiKey::new)),
    }
}

fn print_dry_run(
    input: Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
    max_tokens: u32,
) -> Result<()> {
    let estimate = dry_run(input, prompt, config, max_tokens)?;
    match &estimate.first_messages {
        Some(messages) => {
            for message in messages {
                println!("--- {} ---\n{}", message.role, message.content.trim_end());
            }
        }
        None => println!("(no row can be judged)"),
    }
    println!("---");
    println!(
        "{} rows to judge, {} invalid; about {} prompt tokens and at most {} completion tokens in all (template sha256 {})",
        estimate.rows,
        estimate.invalid,
        estimate.prompt_tokens,
        estimate.completion_tokens_at_most,
        &prompt.template_hash()[..12]
    );
    Ok(())
}
