//! Command-line flags and their resolution, with the environment and a config file, into the
//! library's [`Settings`]; building the judge; printing results.

mod batch;
mod hub;
mod judge;
mod progress;
mod shard;
mod signals;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rejudge::dataset::OutputFormat;
use rejudge::judge::Scoring;
use rejudge::prompt::{Language, Mode, Order, PromptBuilder};
use rejudge::report::{Calibration, EvalSettings};
use rejudge::run::{Input, RunConfig, Stop, dry_run, evaluate, rerank};
use rejudge::settings::{LanguageChoice, Settings, SettingsLayer};
use rejudge::verdict::Inconsistent;
use std::path::PathBuf;
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
    /// Measure the judge against human-labelled pairs: agreement, Cohen's kappa, position and
    /// length bias, and the margin that reaches a target agreement.
    Eval(Box<EvalArguments>),
    /// Check the shards of an output folder (from `rerank --shard`) and write the report, the
    /// card, the plots and the review page of the whole.
    Merge(MergeArguments),
    /// Upload an output folder to a Hugging Face Hub dataset repository in one commit (what
    /// --push-to-hub does after a run).
    Push(Box<hub::PushArguments>),
}

/// `rejudge merge OUTPUT`.
#[derive(Debug, clap::Args)]
struct MergeArguments {
    /// The output folder the shards wrote into.
    output: PathBuf,
}

/// `rejudge eval`: every `rerank` flag, and where the human labels are.
#[derive(Debug, clap::Args)]
struct EvalArguments {
    #[command(flatten)]
    run: RerankArguments,
    /// Column holding the human preference: chosen/rejected, 1/2 or a/b [default: `label` in
    /// LLMBar's input/output_1/output_2 layout; otherwise `chosen` is the preferred response].
    #[arg(long)]
    gold_column: Option<String>,
    /// Column holding each pair's category, for a per-category table [default: `category` or
    /// `subset` when present].
    #[arg(long)]
    category_column: Option<String>,
    /// Find the smallest margin whose decided pairs reach this agreement with the labels, and
    /// write it to OUTPUT/calibration.json for `rerank --calibration`.
    #[arg(long)]
    target_agreement: Option<f64>,
}

impl EvalArguments {
    fn settings(&self) -> Result<Settings> {
        let mut layer = self.run.merged_layer()?;
        layer.gold_column = self.gold_column.clone().or(layer.gold_column);
        layer.category_column = self.category_column.clone().or(layer.category_column);
        layer.target_agreement = self.target_agreement.or(layer.target_agreement);
        if layer.output.is_none() {
            layer.output = layer
                .input
                .as_deref()
                .map(|input| rejudge::settings::output_named(input, "eval"));
        }
        Ok(Settings::resolve(layer)?)
    }
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeFlag {
    /// A 1-5 score and a rationale for each response (UltraFeedback-style).
    Rating,
    /// Which response is better, or a tie, as the answer's first token; then a reason.
    Pairwise,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InconsistentFlag {
    /// Average the two orders' distributions, then apply the margin.
    Merge,
    /// Opposite outcomes in the two orders make a tie (FastChat's rule).
    Tie,
}

impl From<FormatFlag> for OutputFormat {
    fn from(flag: FormatFlag) -> Self {
        match flag {
            FormatFlag::Parquet => OutputFormat::Parquet,
            FormatFlag::Jsonl => OutputFormat::Jsonl,
        }
    }
}

impl From<ScoringFlag> for Scoring {
    fn from(flag: ScoringFlag) -> Self {
        match flag {
            ScoringFlag::Score => Scoring::Score,
            ScoringFlag::Logprobs => Scoring::Logprobs,
        }
    }
}

impl From<ModeFlag> for Mode {
    fn from(flag: ModeFlag) -> Self {
        match flag {
            ModeFlag::Rating => Mode::Rating,
            ModeFlag::Pairwise => Mode::Pairwise,
        }
    }
}

impl From<InconsistentFlag> for Inconsistent {
    fn from(flag: InconsistentFlag) -> Self {
        match flag {
            InconsistentFlag::Merge => Inconsistent::Merge,
            InconsistentFlag::Tie => Inconsistent::Tie,
        }
    }
}

impl From<LanguageFlag> for LanguageChoice {
    fn from(flag: LanguageFlag) -> Self {
        match flag {
            LanguageFlag::Auto => LanguageChoice::Auto,
            LanguageFlag::En => LanguageChoice::En,
            LanguageFlag::It => LanguageChoice::It,
        }
    }
}

impl From<OrderFlag> for Order {
    fn from(flag: OrderFlag) -> Self {
        match flag {
            OrderFlag::Random => Order::Random,
            OrderFlag::Both => Order::Both,
            OrderFlag::ChosenFirst => Order::ChosenFirst,
            OrderFlag::RejectedFirst => Order::RejectedFirst,
        }
    }
}

/// Every setting is optional here so that a config file can supply it; defaults are applied by
/// `Settings::resolve` and shown in the help text.
#[derive(Debug, clap::Args)]
#[allow(clippy::struct_excessive_bools)]
struct RerankArguments {
    /// The dataset: .jsonl, .json, .parquet, .csv, a folder of Parquet shards, or
    /// hf://datasets/ORG/NAME[@REVISION] on the Hugging Face Hub.
    input: Option<String>,
    /// A TOML file with settings, keyed like these flags (e.g. an earlier run's
    /// OUTPUT/rejudge.toml); flags and environment win over it.
    #[arg(long, env = "REJUDGE_CONFIG")]
    config: Option<PathBuf>,

    /// Output folder [default: INPUT's name + "-rejudged" (rerank) or "-eval" (eval), in the
    /// current folder].
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
    /// https://router.huggingface.co/v1); several times for a pool of endpoints serving the
    /// same model. Without it, the judge runs in-process.
    #[arg(long, env = "REJUDGE_BASE_URL", action = clap::ArgAction::Append)]
    base_url: Vec<String>,
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
    /// The judging protocol [default: rating].
    #[arg(long, value_enum)]
    mode: Option<ModeFlag>,
    /// With --order both, what two orders that disagree give [default: merge].
    #[arg(long, value_enum)]
    on_inconsistent: Option<InconsistentFlag>,
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
    /// Decision values up to this size count as ties: a score difference (rating) or a
    /// probability difference (pairwise) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    tie_margin: Option<f64>,

    /// Requests in flight at most; the limit halves when the server answers 429 or 503 and
    /// grows back after successes, unless --fixed-concurrency [default: 16].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Keep --concurrency requests in flight whatever the server answers.
    #[arg(long)]
    fixed_concurrency: bool,
    /// Requests per minute at most, spread evenly (a burst of one second's worth).
    #[arg(long)]
    rpm: Option<f64>,
    /// Tokens per minute at most: prompt tokens plus --max-tokens per request, corrected by the
    /// usage the server reports.
    #[arg(long)]
    tpm: Option<f64>,
    /// The judge's price in US dollars per million prompt tokens (for the spend, --dry-run's
    /// estimate and --max-cost).
    #[arg(long)]
    price_input: Option<f64>,
    /// The judge's price in US dollars per million completion tokens.
    #[arg(long)]
    price_output: Option<f64>,
    /// Stop before the spend (earlier runs on the same journal included) could pass this many
    /// US dollars; raise it and run again to continue.
    #[arg(long)]
    max_cost: Option<f64>,
    /// Seconds allowed for one request attempt [default: 120].
    #[arg(long)]
    timeout: Option<f64>,
    /// Attempts per request, the first included [default: 6].
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Only the first N rows.
    #[arg(long)]
    limit: Option<u64>,
    /// Judge only part I of N of the input (0-based, contiguous rows), into the shared output
    /// folder; `auto` reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, `auto/N` reads
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID. Then run
    /// `rejudge merge OUTPUT`.
    #[arg(long)]
    shard: Option<String>,
    /// The largest judge answer read, in bytes; a larger one fails its row [default: 4194304].
    #[arg(long)]
    max_response_bytes: Option<usize>,
    /// A calibration.json from `rejudge eval --target-agreement`: its margin decides ties
    /// (instead of --tie-margin), and the report records it.
    #[arg(long)]
    calibration: Option<PathBuf>,
    #[command(flatten)]
    batches: batch::BatchFlags,
    /// Show the first rendered prompt and a token estimate; call no judge.
    #[arg(long)]
    dry_run: bool,
    /// No progress bar or progress lines.
    #[arg(short, long)]
    quiet: bool,

    // The Hugging Face Hub: hf:// inputs and pushes.
    /// The subset of an hf:// dataset: what `datasets` calls its config and the Hub's pages a
    /// subset (named so because --config is rejudge's settings file) [default: the card's
    /// default].
    #[arg(long, help_heading = "Hugging Face Hub")]
    subset: Option<String>,
    /// The split of an hf:// dataset [default: train].
    #[arg(long, help_heading = "Hugging Face Hub")]
    split: Option<String>,
    /// After a run with every row done, upload the output folder to this Hub dataset
    /// repository in one commit (created when missing).
    #[arg(long, value_name = "ORG/NAME", help_heading = "Hugging Face Hub")]
    push_to_hub: Option<String>,
    /// With --push-to-hub: create the repository as private; refuse to push to it if it exists
    /// and is public.
    #[arg(long, help_heading = "Hugging Face Hub")]
    private: bool,
    /// With --push-to-hub: the branch to push to [default: main]; created from main when
    /// missing.
    #[arg(long, value_name = "BRANCH", help_heading = "Hugging Face Hub")]
    revision: Option<String>,
    /// With --push-to-hub: also push the journal (every request and answer).
    #[arg(long, help_heading = "Hugging Face Hub")]
    push_journal: bool,
    /// Environment variable holding the Hub token [default: HF_TOKEN, then the token file
    /// `hf auth login` writes].
    #[arg(long, help_heading = "Hugging Face Hub")]
    hf_token_env: Option<String>,
}

impl RerankArguments {
    /// The flags (and the environment variables clap reads for some of them) as a layer.
    fn layer(&self) -> SettingsLayer {
        SettingsLayer {
            input: self.input.clone(),
            output: self.output.clone(),
            format: self.format.map(Into::into),
            journal: self.journal.clone(),
            prompt_column: self.prompt_column.clone(),
            chosen_column: self.chosen_column.clone(),
            rejected_column: self.rejected_column.clone(),
            base_url: match self.base_url.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
            endpoint: self.endpoints(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            model_file: self.model_file.clone().filter(|v| !v.is_empty()),
            threads: self.threads,
            context_size: self.context_size,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
            scoring: self.scoring.map(Into::into),
            mode: self.mode.map(Into::into),
            on_inconsistent: self.on_inconsistent.map(Into::into),
            lang: self.lang.map(Into::into),
            template: self.template.clone(),
            order: self.order.map(Into::into),
            tie_margin: self.tie_margin,
            concurrency: self.concurrency,
            timeout: self.timeout,
            max_attempts: self.max_attempts,
            limit: self.limit,
            max_response_bytes: self.max_response_bytes,
            calibration: self.calibration.clone(),
            rpm: self.rpm,
            tpm: self.tpm,
            fixed_concurrency: self.fixed_concurrency.then_some(true),
            price_input: self.price_input,
            price_output: self.price_output,
            max_cost: self.max_cost,
            // Hugging Face Hub
            subset: self.subset.clone(),
            split: self.split.clone(),
            push_to_hub: self.push_to_hub.clone(),
            private: self.private.then_some(true),
            revision: self.revision.clone(),
            push_journal: self.push_journal.then_some(true),
            hf_token_env: self.hf_token_env.clone(),
            ..SettingsLayer::default()
        }
    }

    /// `--base-url` given several times: a pool of endpoints.
    fn endpoints(&self) -> Option<Vec<rejudge::settings::EndpointEntry>> {
        (self.base_url.len() > 1).then(|| {
            self.base_url
                .iter()
                .map(|url| rejudge::settings::EndpointEntry {
                    url: url.clone(),
                    weight: 1.0,
                    concurrency: None,
                    api_key_env: None,
                })
                .collect()
        })
    }

    /// Flags and environment over the config file.
    fn merged_layer(&self) -> Result<SettingsLayer> {
        let file = match &self.config {
            Some(path) => SettingsLayer::from_file(path)?,
            None => SettingsLayer::default(),
        };
        let mut layer = self.layer();
        if let Some(text) = &self.shard {
            layer.shard = Some(shard::resolve(text)?);
        }
        Ok(layer.over(file))
    }

    /// Flags and environment over the config file over the defaults.
    fn settings(&self) -> Result<Settings> {
        Ok(Settings::resolve(self.merged_layer()?)?)
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
        Command::Eval(arguments) => eval_command(&arguments),
        Command::Merge(arguments) => merge_command(&arguments),
        Command::Push(arguments) => hub::push_command(&arguments),
    }
}

fn merge_command(arguments: &MergeArguments) -> Result<Finish> {
    let folder = &arguments.output;
    let settings = fs_err::read_to_string(folder.join("rejudge.toml")).ok();
    let report = rejudge::run::merge_shards(folder, settings.as_deref())?;
    println!("{}", report.summary_table().trim_end());
    println!(
        "merged {} shards into {}",
        report.files.len(),
        folder.join("report.json").display()
    );
    Ok(finish(&report))
}

/// What every judging command sets up once its input is open.
struct Session {
    runtime: tokio::runtime::Runtime,
    panel: judge::Panel,
    max_spread: Option<f64>,
    stop: Arc<Stop>,
    progress: progress::Bar,
    config: RunConfig,
}

impl Session {
    fn start(settings: &Settings, quiet: bool, batches: &batch::BatchFlags) -> Result<Self> {
        let config = run_config(settings)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let panel = if batches.deferred() {
            batch::deferring_panel(settings)?
        } else {
            runtime.block_on(judge::panel(settings))?
        };
        if judge::is_demo_model(&panel) {
            eprintln!(
                "note: the judge is the tiny gemma-3-270m demo model; its verdicts show the pipeline working, not real quality"
            );
        }
        let stop = Arc::new(Stop::default());
        runtime.spawn(signals::watch(stop.clone()));
        Ok(Session {
            runtime,
            panel,
            max_spread: settings.panel.and_then(|panel| panel.max_spread),
            stop,
            progress: progress::Bar::new(quiet),
            config,
        })
    }
}

/// The pipeline's settings, with the margin of a calibration file when one is given.
fn run_config(settings: &Settings) -> Result<RunConfig> {
    let mut config = settings.run_config();
    let priced_panel = settings
        .judges
        .iter()
        .flatten()
        .any(|j| j.price_input.is_some() || j.price_output.is_some());
    if settings.max_cost.is_some() && config.prices.is_none() && !priced_panel {
        bail!(
            "--max-cost needs the judge's prices\nhint: give --price-input and --price-output (US dollars per million tokens)"
        );
    }
    if let Some(path) = &settings.calibration {
        let calibration = Calibration::load(path)?;
        calibration
            .check(settings.mode.as_str(), scoring_name(settings.scoring))
            .with_context(|| format!("--calibration {}", path.display()))?;
        if settings.tie_margin != 0.0 {
            bail!("--calibration and --tie-margin both set the margin\nhint: give one of them");
        }
        config.policy.tie_margin = calibration.margin;
        config.calibration = Some(calibration);
    }
    Ok(config)
}

fn scoring_name(scoring: Scoring) -> &'static str {
    match scoring {
        Scoring::Score => "score",
        Scoring::Logprobs => "logprobs",
    }
}

fn rerank_command(arguments: &RerankArguments) -> Result<Finish> {
    let settings = arguments.settings()?;
    hub::check_push(&settings)?;
    let input = hub::open_input(&settings, false)?;
    let prompt = prompt(&settings, &input)?;
    if arguments.dry_run {
        print_dry_run(&input, &prompt, &settings)?;
        return Ok(Finish::Complete);
    }
    if let Some(path) = &arguments.batches.batch_export {
        batch::export(&settings, &input, &prompt, &run_config(&settings)?, path)?;
        return Ok(Finish::Complete);
    }
    let session = Session::start(&settings, arguments.quiet, &arguments.batches)?;
    if arguments.batches.deferred() {
        batch::fill_journal(
            &arguments.batches,
            &settings,
            &input,
            &prompt,
            &session.config,
            &session.runtime,
        )?;
    }
    let judges = session.panel.judges(session.max_spread);
    let Session {
        runtime,
        stop,
        progress,
        config,
        ..
    } = &session;
    let report = runtime.block_on(rerank(input, &prompt, &judges, config, progress, stop));
    progress.done();
    let report = report?;
    println!("{}", report.summary_table().trim_end());
    println!(
        "wrote {} and {}",
        report.output.display(),
        settings.output.join("report.json").display()
    );
    let finished = finish(&report);
    hub::push_after_run(&settings, &finished)?;
    Ok(finished)
}

fn eval_command(arguments: &EvalArguments) -> Result<Finish> {
    let settings = arguments.settings()?;
    hub::check_push(&settings)?;
    let input = hub::open_input(&settings, true)?;
    let prompt = prompt(&settings, &input)?;
    if arguments.run.dry_run {
        print_dry_run(&input, &prompt, &settings)?;
        return Ok(Finish::Complete);
    }
    if let Some(path) = &arguments.run.batches.batch_export {
        batch::export(&settings, &input, &prompt, &run_config(&settings)?, path)?;
        return Ok(Finish::Complete);
    }
    let batches = &arguments.run.batches;
    let session = Session::start(&settings, arguments.run.quiet, batches)?;
    if batches.deferred() {
        batch::fill_journal(
            batches,
            &settings,
            &input,
            &prompt,
            &session.config,
            &session.runtime,
        )?;
    }
    let judges = session.panel.judges(session.max_spread);
    let Session {
        runtime,
        stop,
        progress,
        config,
        ..
    } = &session;
    let evaluation = EvalSettings {
        target_agreement: settings.target_agreement,
        seed: settings.seed,
    };
    let evaluated = runtime.block_on(evaluate(
        input,
        &prompt,
        &judges,
        config,
        &evaluation,
        progress,
        stop,
    ));
    progress.done();
    let (report, evaluated) = evaluated?;
    println!("{}", evaluated.summary().trim_end());
    if let (Some(target), None) = (settings.target_agreement, &evaluated.calibration) {
        println!(
            "no margin reaches {:.1}% agreement among decided pairs",
            100.0 * target
        );
    }
    println!("wrote {}", settings.output.join("eval.json").display());
    let finished = finish(&report);
    hub::push_after_run(&settings, &finished)?;
    Ok(finished)
}

/// How a finished run ends: failed rows ask for a rerun.
fn finish(report: &rejudge::report::Report) -> Finish {
    let failed = report.outcomes.get("failed").copied().unwrap_or(0);
    if failed > 0 {
        eprintln!("rejudge: {failed} rows failed; run the same command to try them again");
        Finish::FailedRows
    } else {
        Finish::Complete
    }
}

fn prompt(settings: &Settings, input: &Input) -> Result<PromptBuilder> {
    let language = match settings.lang {
        LanguageChoice::Auto => input.language(),
        LanguageChoice::En => Language::En,
        LanguageChoice::It => Language::It,
    };
    Ok(match &settings.template {
        None => PromptBuilder::builtin(language, settings.mode),
        Some(path) => {
            let source = fs_err::read_to_string(path).context("reading the template")?;
            let name = path.display().to_string();
            PromptBuilder::from_template(&name, source, language, settings.mode)?
        }
    })
}

fn print_dry_run(input: &Input, prompt: &PromptBuilder, settings: &Settings) -> Result<()> {
    let counter = judge::token_counter(settings)?;
    let mut count =
        |messages: &[rejudge::prompt::ChatMessage]| counter.as_ref().and_then(|c| c(messages));
    let estimate = dry_run(
        input,
        prompt,
        &settings.run_config(),
        settings.max_tokens,
        &mut count,
    )?;
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
        "{} rows to judge, {} invalid, {} with identical responses; {} {} prompt tokens and at most {} completion tokens in all (template sha256 {})",
        estimate.rows,
        estimate.invalid,
        estimate.identical,
        if estimate.estimated {
            "about"
        } else {
            "exactly"
        },
        estimate.prompt_tokens,
        estimate.completion_tokens_at_most,
        &prompt.template_hash()[..12]
    );
    if let Some(prices) = settings.prices() {
        println!(
            "cost: at most ${:.4} at ${} and ${} per million prompt and completion tokens (both orders counted where judged)",
            estimate.cost_at_most(prices),
            prices.input,
            prices.output
        );
    }
    Ok(())
}
