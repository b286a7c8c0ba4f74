//! Command-line flags and their resolution, with the environment and a config file, into the
//! library's [`Settings`]; building the judge; printing results.

mod judge;
mod progress;
mod signals;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use rejudge::dataset::OutputFormat;
use rejudge::judge::Scoring;
use rejudge::prompt::{Language, Order, PromptBuilder};
use rejudge::run::{Input, Stop, dry_run, rerank};
use rejudge::settings::{LanguageChoice, Settings, SettingsLayer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Every setting is optional here so that a config file can supply it; defaults are applied by
/// `Settings::resolve` and shown in the help text.
#[derive(Debug, clap::Args)]
#[allow(clippy::struct_excessive_bools)]
struct RerankArguments {
    /// The dataset: .jsonl, .json, .parquet, .csv, or a folder of Parquet shards.
    input: Option<String>,
    /// A TOML file with settings, keyed like these flags (e.g. an earlier run's
    /// OUTPUT/rejudge.toml); flags and environment win over it.
    #[arg(long, env = "REJUDGE_CONFIG")]
    config: Option<PathBuf>,

    /// Output folder [default: INPUT's name + "-rejudged", in the current folder].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Output data format [default: parquet].
    #[arg(long, value_enum)]
    format: Option<FormatFlag>,
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
    #[arg(long, env = "REJUDGE_BASE_URL")]
    base_url: Option<String>,
    /// Model name sent to the server.
    #[arg(long, env = "REJUDGE_MODEL")]
    model: Option<String>,
    /// Environment variable holding the API key [default: OPENAI_API_KEY, then HF_TOKEN].
    #[arg(long, env = "REJUDGE_API_KEY_ENV")]
    api_key_env: Option<String>,
    /// A GGUF model for the in-process judge: a path or hf://ORG/REPO/FILE.gguf [default: the
    /// default model from the Hugging Face Hub].
    #[arg(long, env = "REJUDGE_MODEL_FILE")]
    model_file: Option<String>,
    /// Threads for the in-process judge [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Context size per sequence for the in-process judge [default: 4096].
    #[arg(long)]
    context_size: Option<u32>,

    /// Sampling temperature [default: 0].
    #[arg(long)]
    temperature: Option<f64>,
    /// Most tokens the judge may write per answer [default: 512].
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Sampling seed; also seeds the random order of responses [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// How scores are read: the written digit, or the expected score under the judge's
    /// log-probabilities (continuous, fewer false ties) [default: score].
    #[arg(long, value_enum)]
    scoring: Option<ScoringFlag>,
    /// Rubric language [default: auto].
    #[arg(long, value_enum)]
    lang: Option<LanguageFlag>,
    /// A minijinja template for the judge's instruction (variables: system, history, prompt,
    /// response_a, response_b).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Which stored response the judge sees first; `both` judges every pair in both orders and
    /// averages, which removes position bias at twice the cost [default: random].
    #[arg(long, value_enum)]
    order: Option<OrderFlag>,
    /// Score differences up to this size count as ties [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    tie_margin: Option<f64>,

    /// Requests in flight at most [default: 16].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds allowed for one request attempt [default: 120].
    #[arg(long)]
    timeout: Option<f64>,
    /// Attempts per request, the first included [default: 6].
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Only the first N rows.
    #[arg(long)]
    limit: Option<u64>,
    /// The largest judge answer read, in bytes; a larger one fails its row [default: 4194304].
    #[arg(long)]
    max_response_bytes: Option<usize>,
    /// Show the first rendered prompt and a token estimate; call no judge.
    #[arg(long)]
    dry_run: bool,
    /// No progress bar or progress lines.
    #[arg(short, long)]
    quiet: bool,
}

impl RerankArguments {
    /// The flags (and the environment variables clap reads for some of them) as a layer.
    fn layer(&self) -> SettingsLayer {
        SettingsLayer {
            input: self.input.clone(),
            output: self.output.clone(),
            format: self.format.map(|f| match f {
                FormatFlag::Parquet => OutputFormat::Parquet,
                FormatFlag::Jsonl => OutputFormat::Jsonl,
            }),
            journal: self.journal.clone(),
            prompt_column: self.prompt_column.clone(),
            chosen_column: self.chosen_column.clone(),
            rejected_column: self.rejected_column.clone(),
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            model_file: self.model_file.clone().filter(|v| !v.is_empty()),
            threads: self.threads,
            context_size: self.context_size,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
            scoring: self.scoring.map(|s| match s {
                ScoringFlag::Score => Scoring::Score,
                ScoringFlag::Logprobs => Scoring::Logprobs,
            }),
            lang: self.lang.map(|l| match l {
                LanguageFlag::Auto => LanguageChoice::Auto,
                LanguageFlag::En => LanguageChoice::En,
                LanguageFlag::It => LanguageChoice::It,
            }),
            template: self.template.clone(),
            order: self.order.map(|o| match o {
                OrderFlag::Random => Order::Random,
                OrderFlag::Both => Order::Both,
                OrderFlag::ChosenFirst => Order::ChosenFirst,
                OrderFlag::RejectedFirst => Order::RejectedFirst,
            }),
            tie_margin: self.tie_margin,
            concurrency: self.concurrency,
            timeout: self.timeout,
            max_attempts: self.max_attempts,
            limit: self.limit,
            max_response_bytes: self.max_response_bytes,
        }
    }

    /// Flags and environment over the config file over the defaults.
    fn settings(&self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => SettingsLayer::from_file(path)?,
            None => SettingsLayer::default(),
        };
        Ok(Settings::resolve(self.layer().over(file))?)
    }
}

/// How a command ended, for the exit status.
pub enum Finish {
    /// Every row has a verdict (or cannot be judged).
    Complete,
    /// The run finished, but some rows failed; running it again retries them.
    FailedRows,
}

/// Runs a parsed command line.
pub fn execute(arguments: Arguments) -> Result<Finish> {
    match arguments.command {
        Command::Rerank(arguments) => rerank_command(&arguments),
    }
}

fn rerank_command(arguments: &RerankArguments) -> Result<Finish> {
    let settings = arguments.settings()?;
    let input = Input::open(Path::new(&settings.input), &settings.column_overrides())?;
    let prompt = prompt(&settings, &input)?;
    if arguments.dry_run {
        print_dry_run(&input, &prompt, &settings)?;
        return Ok(Finish::Complete);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let judge = runtime.block_on(judge::build(&settings))?;
    if judge::is_demo_model(&judge) {
        eprintln!(
            "note: the judge is the tiny gemma-3-270m demo model; its verdicts show the pipeline working, not real quality"
        );
    }
    let stop = Arc::new(Stop::default());
    runtime.spawn(signals::watch(stop.clone()));
    let progress = progress::Bar::new(arguments.quiet);
    let config = settings.run_config();
    let report = runtime.block_on(rerank(input, &prompt, &judge, &config, &progress, &stop));
    progress.done();
    let report = report?;
    println!("{}", report.summary_table().trim_end());
    println!(
        "wrote {} and {}",
        report.output.display(),
        settings.output.join("report.json").display()
    );
    let failed = report.outcomes.get("failed").copied().unwrap_or(0);
    if failed > 0 {
        eprintln!("rejudge: {failed} rows failed; run the same command to try them again");
        return Ok(Finish::FailedRows);
    }
    Ok(Finish::Complete)
}

fn prompt(settings: &Settings, input: &Input) -> Result<PromptBuilder> {
    let language = match settings.lang {
        LanguageChoice::Auto => input.language(),
        LanguageChoice::En => Language::En,
        LanguageChoice::It => Language::It,
    };
    Ok(match &settings.template {
        None => PromptBuilder::builtin(language),
        Some(path) => {
            let source = fs_err::read_to_string(path).context("reading the template")?;
            PromptBuilder::from_template(&path.display().to_string(), source, language)?
        }
    })
}

fn print_dry_run(input: &Input, prompt: &PromptBuilder, settings: &Settings) -> Result<()> {
    let estimate = dry_run(input, prompt, &settings.run_config(), settings.max_tokens)?;
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
        "{} rows to judge, {} invalid, {} with identical responses; about {} prompt tokens and at most {} completion tokens in all (template sha256 {})",
        estimate.rows,
        estimate.invalid,
        estimate.identical,
        estimate.prompt_tokens,
        estimate.completion_tokens_at_most,
        &prompt.template_hash()[..12]
    );
    Ok(())
}
