//! The run's statistics: counted from typed verdicts ([`Tally`]), written as `report.json`, the
//! summary table printed at the end, and a dataset card for the Hub.
//!
//! Built from plain values only: the pipeline hands over what it counted; nothing here knows how
//! a run works.

mod atomic;
mod card;
pub mod eval;
mod figures;
mod review;
pub mod stats;

pub mod plots;

pub use card::CardExtras;
pub use eval::{Calibration, EvalContext, EvalRow, EvalSettings, Evaluation, Protocol, evaluate};
pub use figures::PlotSample;
pub use review::{About, Review};

use crate::judge::Usage;
use crate::prompt::{Language, Mode, Order};
use crate::verdict::{Inconsistent, Outcome, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many distinct failure reasons the report lists.
const TOP_REASONS: usize = 5;

/// Errors while writing the report files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A report file could not be written (the path is in the message).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
    /// A calibration file cannot be read or does not fit the run.
    #[error("{}{message}", if path.as_os_str().is_empty() { String::new() } else { format!("{}: ", path.display()) })]
    Calibration {
        /// The file, when the problem is in reading it.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What was run, as the report states it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Description {
    /// The input file, folder or address.
    pub input: String,
    /// The judge model.
    pub judge_model: String,
    /// SHA-256 of the rubric and template text.
    pub template_sha256: String,
    /// The rubric language.
    pub language: Language,
    /// Which response was shown first.
    pub order: Order,
    /// Score differences up to this count as ties.
    pub tie_margin: f64,
    /// The protocol: `rating` or `pairwise`.
    pub mode: Mode,
    /// How scores were read: `score` or `logprobs`.
    pub scoring: String,
    /// What disagreeing orders gave.
    pub on_inconsistent: Inconsistent,
    /// Where the margin came from, when a calibration file set it.
    pub calibration: Option<Calibration>,
    /// The user template's file name; `None` for the built-in rubric.
    pub template: Option<String>,
}

/// Token totals.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

/// Request totals, as the pipeline counted them.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Requests {
    /// Sent to the judge in this run.
    pub sent: u64,
    /// Served from the journal, with no call.
    pub from_journal: u64,
    /// Identical requests in flight together, sent once and shared.
    pub deduplicated: u64,
    /// Retries after transient failures.
    pub retried: u64,
    /// Asked again because an answer did not parse.
    pub parse_retries: u64,
}

impl Positions {
    fn merge(&mut self, other: &Positions) {
        self.chosen_first += other.chosen_first;
        self.rejected_first += other.rejected_first;
        self.first_shown_won += other.first_shown_won;
        self.second_shown_won += other.second_shown_won;
        self.both_orders += other.both_orders;
        self.consistent += other.consistent;
    }
}

impl Judging {
    fn merge(&mut self, other: &Judging) {
        for (judge, rows) in &other.decided_by {
            *self.decided_by.entry(judge.clone()).or_default() += rows;
        }
        self.panel_rows += other.panel_rows;
        self.panel_unanimous += other.panel_unanimous;
        self.escalated += other.escalated;
        self.escalation_changed += other.escalation_changed;
    }
}

impl Measures {
    /// Adds a shard's measures: requests and spend summed, the longest wall time kept.
    pub fn merge(&mut self, other: &Measures) {
        let requests = &mut self.requests;
        requests.sent += other.requests.sent;
        requests.from_journal += other.requests.from_journal;
        requests.deduplicated += other.requests.deduplicated;
        requests.retried += other.requests.retried;
        requests.parse_retries += other.requests.parse_retries;
        self.rows_already_done += other.rows_already_done;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.spend = match (self.spend, other.spend) {
            (Some(mine), Some(theirs)) => Some(Spend {
                this_run: mine.this_run + theirs.this_run,
                total: mine.total + theirs.total,
                ..mine
            }),
            (mine, theirs) => mine.or(theirs),
        };
        self.endpoints.extend(other.endpoints.iter().cloned());
    }
}

/// Which stored response was shown to the judge first, and which position won.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Positions {
    /// The order policy.
    pub policy: String,
    /// Judgments where the stored chosen response was Response A.
    pub chosen_first: u64,
    /// Judgments where the stored rejected response was Response A.
    pub rejected_first: u64,
    /// Decided judgments (each order on its own) won by the response shown first; far from
    /// half of the decided judgments, it points at a judge that favours a position.
    pub first_shown_won: u64,
    /// Decided judgments won by the response shown second.
    pub second_shown_won: u64,
    /// Rows judged in both orders.
    pub both_orders: u64,
    /// Of those, rows whose two orders gave the same outcome (position consistency).
    pub consistent: u64,
}

/// What the report needs to know of a row besides its verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowFacts {
    /// Whether the stored chosen response is the longer one; `None` when both are as long or
    /// the row could not be read.
    pub chosen_longer: Option<bool>,
    /// The lengths, in characters, of the stored chosen and rejected responses.
    pub lengths: Option<(usize, usize)>,
    /// For `eval`: where the human-preferred response sits, and the row's category.
    pub labelled: Option<Labelled>,
}

/// The human label of an evaluated row, as the statistics need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// Whether the preferred response is the first of the pair (see [`EvalRow::gold_first`]).
    pub gold_first: bool,
    /// The row's category.
    pub category: Option<String>,
}

/// Bins of the fine margin histogram: 0.01 wide over 0 to 4, fine enough to redraw for either
/// protocol's scale.
const MARGIN_BINS: usize = 400;

/// The fine histogram bin of a decision value.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite, >= 0, clamped below
fn margin_bin(margin: f64) -> usize {
    let hundredths = (margin.abs() * 100.0).min((MARGIN_BINS - 1) as f64);
    hundredths as usize
}

/// Counts over the verdicts of a run, one row at a time.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Tally {
    rows: u64,
    outcomes: BTreeMap<Outcome, u64>,
    tokens: Tokens,
    positions: Positions,
    scored: u64,
    score_sums: [f64; 2],
    reasons: BTreeMap<String, u64>,
    lengths: [u64; 2],
    margins: Vec<u64>,
    labelled: Vec<EvalRow>,
    judges: Judging,
    sample: PlotSample,
}

/// Who decided the rows, for runs with a panel or an escalation judge.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Judging {
    /// Rows per deciding judge (the `judge_model` column), unscored rows left out.
    pub decided_by: BTreeMap<String, u64>,
    /// Rows a panel judged.
    pub panel_rows: u64,
    /// Of those, rows on which every judge of the panel gave the same outcome.
    pub panel_unanimous: u64,
    /// Rows sent to the escalation judge.
    pub escalated: u64,
    /// Of those, rows whose outcome the escalation judge changed.
    pub escalation_changed: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            rows: 0,
            outcomes: BTreeMap::new(),
            tokens: Tokens::default(),
            positions: Positions::default(),
            scored: 0,
            score_sums: [0.0; 2],
            reasons: BTreeMap::new(),
            lengths: [0; 2],
            margins: vec![0; MARGIN_BINS],
            labelled: Vec::new(),
            judges: Judging::default(),
            sample: PlotSample::default(),
        }
    }
}

impl Tally {
    /// Adds another tally's counts (a shard's) to these.
    pub fn merge(&mut self, other: &Tally) {
        self.rows += other.rows;
        for (outcome, count) in &other.outcomes {
            *self.outcomes.entry(*outcome).or_default() += count;
        }
        self.tokens.prompt = self.tokens.prompt.saturating_add(other.tokens.prompt);
        self.tokens.completion = self
            .tokens
            .completion
            .saturating_add(other.tokens.completion);
        self.positions.merge(&other.positions);
        self.scored += other.scored;
        self.score_sums[0] += other.score_sums[0];
        self.score_sums[1] += other.score_sums[1];
        for (reason, count) in &other.reasons {
            *self.reasons.entry(reason.clone()).or_default() += count;
        }
        self.lengths[0] += other.lengths[0];
        self.lengths[1] += other.lengths[1];
        for (total, count) in self.margins.iter_mut().zip(&other.margins) {
            *total += count;
        }
        self.labelled.extend(other.labelled.iter().cloned());
        self.judges.merge(&other.judges);
        self.sample.merge(&other.sample);
    }

    /// Counts one finished row and the tokens it used.
    pub fn count(&mut self, verdict: &Verdict, facts: &RowFacts, usage: Usage) {
        self.count_length(verdict, facts);
        self.count_judges(verdict);
        self.sample.push(verdict, facts.lengths);
        if let Some(margin) = verdict.margin.filter(|m| m.is_finite()) {
            self.margins[margin_bin(margin)] += 1;
        }
        if let Some(labelled) = &facts.labelled {
            self.labelled.push(EvalRow {
                outcome: verdict.outcome,
                decision: verdict.margin.map(|m| {
                    if verdict.outcome == Outcome::Swapped {
                        -m
                    } else {
                        m
                    }
                }),
                gold_first: labelled.gold_first,
                gold_longer: facts.chosen_longer,
                category: labelled.category.clone(),
                orders: verdict.orders.clone(),
                consistent: verdict.position_consistent(),
            });
        }
        self.rows += 1;
        *self.outcomes.entry(verdict.outcome).or_default() += 1;
        self.tokens.prompt = self.tokens.prompt.saturating_add(usage.prompt_tokens);
        self.tokens.completion = self
            .tokens
            .completion
            .saturating_add(usage.completion_tokens);
        self.count_position(verdict);
        if let (Some(chosen), Some(rejected)) = (&verdict.chosen, &verdict.rejected) {
            self.scored += 1;
            self.score_sums[0] += chosen.score;
            self.score_sums[1] += rejected.score;
        }
        let unscored = matches!(verdict.outcome, Outcome::Failed | Outcome::Invalid);
        if let (true, Some(reason)) = (unscored, &verdict.reason) {
            *self.reasons.entry(reason_class(reason)).or_default() += 1;
        }
    }

    fn count_position(&mut self, verdict: &Verdict) {
        let positions = &mut self.positions;
        for order in &verdict.orders {
            if order.chosen_first {
                positions.chosen_first += 1;
            } else {
                positions.rejected_first += 1;
            }
            match order.first_won() {
                Some(true) => positions.first_shown_won += 1,
                Some(false) => positions.second_shown_won += 1,
                None => {}
            }
        }
        if let Some(consistent) = verdict.position_consistent() {
            positions.both_orders += 1;
            positions.consistent += u64::from(consistent);
        }
    }

    fn count_judges(&mut self, verdict: &Verdict) {
        let judges = &mut self.judges;
        if matches!(
            verdict.outcome,
            Outcome::Kept | Outcome::Swapped | Outcome::Tie
        ) && verdict.margin.is_some()
        {
            *judges
                .decided_by
                .entry(verdict.judge_model.to_string())
                .or_default() += 1;
        }
        if let Some(before) = verdict.escalated_from {
            judges.escalated += 1;
            judges.escalation_changed += u64::from(before != verdict.outcome);
        }
        if let Some((_, first)) = verdict.members.first() {
            judges.panel_rows += 1;
            judges.panel_unanimous += u64::from(verdict.members.iter().all(|(_, o)| o == first));
        }
    }

    /// Decided rows whose responses differ in length, and those the longer one won.
    fn count_length(&mut self, verdict: &Verdict, facts: &RowFacts) {
        let Some(chosen_longer) = facts.chosen_longer else {
            return;
        };
        let longer_won = match verdict.outcome {
            Outcome::Kept => chosen_longer,
            Outcome::Swapped => !chosen_longer,
            _ => return,
        };
        self.lengths[0] += 1;
        self.lengths[1] += u64::from(longer_won);
    }

    /// The sample of rows the plots are drawn from.
    pub fn sample(&self) -> &PlotSample {
        &self.sample
    }

    /// The evaluated rows (`eval` runs only).
    pub fn labelled(&self) -> &[EvalRow] {
        &self.labelled
    }

    /// Tokens counted so far.
    pub fn tokens(&self) -> Tokens {
        self.tokens
    }

    /// Rows counted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows with `outcome` so far.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }
}

/// The statistics of a run, written to `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The rejudge version that wrote it.
    pub rejudge_version: String,
    /// The input file, folder or address.
    pub input: String,
    /// The output data file.
    pub output: PathBuf,
    /// The data files, relative to the output folder (what the card's `configs` name).
    pub files: Vec<String>,
    /// Rows written (equal to the rows read).
    pub rows: u64,
    /// Rows per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Share of rows per outcome.
    pub rates: BTreeMap<String, f64>,
    /// Tokens used (answers from the journal count the tokens they originally used).
    pub tokens: Tokens,
    /// Requests sent, served from the journal and retried.
    pub requests: Requests,
    /// Rows that already had answers in the journal when the run started.
    pub rows_already_done: u64,
    /// Wall time of the run.
    pub wall_seconds: f64,
    /// Rows per second.
    pub rows_per_second: f64,
    /// The judge model.
    pub judge_model: String,
    /// SHA-256 of the rubric and template text.
    pub template_sha256: String,
    /// The rubric language.
    pub language: Language,
    /// The tie margin used for decisions.
    pub tie_margin: f64,
    /// The protocol: `rating` or `pairwise`.
    pub mode: Mode,
    /// How scores were read.
    pub scoring: String,
    /// What two orders that disagree gave.
    pub on_inconsistent: Inconsistent,
    /// The calibration that set the margin, if one did.
    pub calibration: Option<Calibration>,
    /// The user template's file name; `None` for the built-in rubric.
    pub template: Option<String>,
    /// 95% Wilson intervals of the outcome rates.
    pub rate_intervals: BTreeMap<String, [f64; 2]>,
    /// Which stored response was shown first.
    pub positions: Positions,
    /// Share of rows judged in both orders whose orders agreed.
    pub position_consistency: Option<f64>,
    /// Decided rows whose responses differ in length that the longer response won.
    pub length_bias: LengthShare,
    /// How far the judge's decision values were from a tie (absolute values).
    pub margins: MarginHistogram,
    /// Who decided the rows: per judge, and how a panel and an escalation judge fared.
    pub judging: Judging,
    /// What the requests cost, when the judge's prices are known.
    pub cost: Option<Spend>,
    /// What each endpoint of a pool did.
    pub endpoints: Vec<crate::judge::EndpointFigures>,
    /// Mean score of the (re-ranked) chosen and rejected responses over scored rows.
    pub mean_scores: BTreeMap<String, f64>,
    /// The most common failure reasons with their counts.
    pub failure_reasons: Vec<(String, u64)>,
}

/// How often the longer response won.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LengthShare {
    /// Decided rows whose two responses differ in length.
    pub decided: u64,
    /// Of those, rows the longer response won.
    pub longer_won: u64,
    /// The share, when there are such rows.
    pub share: Option<f64>,
}

impl LengthShare {
    fn of([decided, longer_won]: [u64; 2]) -> Self {
        LengthShare {
            decided,
            longer_won,
            share: stats::share(longer_won, decided),
        }
    }
}

/// A histogram of absolute decision values.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MarginHistogram {
    /// Bin edges, one more than the counts.
    pub edges: Vec<f64>,
    /// Rows per bin.
    pub counts: Vec<u64>,
}

impl MarginHistogram {
    /// The fine counts regrouped for the protocol's scale: 16 bins over 0-4 for ratings, 20
    /// over 0-1 for preferences.
    fn of(fine: &[u64], mode: Mode) -> Self {
        let (bins, width) = match mode {
            Mode::Rating => (16, 25),
            Mode::Pairwise => (20, 5),
        };
        let mut counts = vec![0u64; bins];
        for (at, count) in fine.iter().enumerate() {
            counts[(at / width).min(bins - 1)] += count;
        }
        let step = width as f64 / 100.0;
        MarginHistogram {
            edges: (0..=bins).map(|i| i as f64 * step).collect(),
            counts,
        }
    }
}

/// What the judge's requests cost, in US dollars, when its prices are known.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Spend {
    /// Spent by this run's requests.
    pub this_run: f64,
    /// Spent in all, earlier runs on the same journal included.
    pub total: f64,
    /// The cap (`--max-cost`), if any.
    pub cap: Option<f64>,
    /// Per million prompt tokens.
    pub price_input: f64,
    /// Per million completion tokens.
    pub price_output: f64,
}

/// What the pipeline measured besides the verdicts.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Measures {
    /// Requests sent, reused and retried.
    pub requests: Requests,
    /// Rows that already had answers when the run started.
    pub rows_already_done: u64,
    /// Wall time (for merged shards: the longest shard's).
    pub elapsed: Duration,
    /// The data file written.
    pub output: PathBuf,
    /// The spend, when prices are known.
    pub spend: Option<Spend>,
    /// What each endpoint of a pool did.
    pub endpoints: Vec<crate::judge::EndpointFigures>,
}

impl Report {
    /// The report of a finished run.
    pub fn new(description: Description, tally: Tally, measures: Measures) -> Self {
        let rows = tally.rows;
        let outcomes: BTreeMap<String, u64> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str().to_owned(), tally.outcome(*o)))
            .collect();
        let share = |count: u64| count as f64 / rows.max(1) as f64;
        let rates = outcomes
            .iter()
            .map(|(name, count)| (name.clone(), share(*count)))
            .collect();
        let wall_seconds = measures.elapsed.as_secs_f64();
        let rate_intervals = intervals(&outcomes, rows);
        let positions = &tally.positions;
        let position_consistency = stats::share(positions.consistent, positions.both_orders);
        let length_bias = LengthShare::of(tally.lengths);
        let margins = MarginHistogram::of(&tally.margins, description.mode);
        Report {
            rejudge_version: env!("CARGO_PKG_VERSION").to_owned(),
            input: description.input,
            files: data_files(&measures.output),
            output: measures.output,
            rows,
            outcomes,
            rates,
            tokens: tally.tokens,
            requests: measures.requests,
            rows_already_done: measures.rows_already_done,
            wall_seconds,
            rows_per_second: if wall_seconds > 0.0 {
                rows as f64 / wall_seconds
            } else {
                0.0
            },
            judge_model: description.judge_model,
            template_sha256: description.template_sha256,
            language: description.language,
            tie_margin: description.tie_margin,
            mode: description.mode,
            scoring: description.scoring,
            on_inconsistent: description.on_inconsistent,
            calibration: description.calibration,
            template: description.template,
            rate_intervals,
            position_consistency,
            length_bias,
            margins,
            judging: tally.judges.clone(),
            cost: measures.spend,
            endpoints: measures.endpoints,
            positions: Positions {
                policy: description.order.as_str().to_owned(),
                ..tally.positions
            },
            mean_scores: mean_scores(&tally),
            failure_reasons: top_reasons(tally.reasons),
        }
    }

    /// Writes `report.json` and the dataset card `README.md` into the output folder, atomically.
    pub fn write(&self, folder: &Path, extras: &CardExtras<'_>) -> Result<(), ReportError> {
        let json = serde_json::to_string_pretty(self).expect("a report serialises; this is a bug");
        write_atomically(&folder.join("report.json"), json.as_bytes())?;
        write_atomically(
            &folder.join("README.md"),
            card::render(self, extras).as_bytes(),
        )
    }

    /// Draws the plots into `folder/plots/`; returns their paths relative to `folder`.
    pub fn draw(&self, folder: &Path, tally: &Tally) -> Result<Vec<String>, ReportError> {
        let outcomes: Vec<(&str, u64)> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str(), tally.outcome(*o)))
            .collect();
        figures::draw(folder, &tally.sample, &outcomes, self.mode, self.tie_margin)
    }

    /// The table printed at the end of a run.
    pub fn summary_table(&self) -> String {
        let mut table = String::new();
        let _ = writeln!(table, "{:<10} {:>8} {:>8}", "outcome", "rows", "share");
        for outcome in Outcome::ALL {
            let name = outcome.as_str();
            let count = self.outcomes.get(name).copied().unwrap_or(0);
            let rate = self.rates.get(name).copied().unwrap_or(0.0);
            let _ = writeln!(table, "{name:<10} {count:>8} {:>7.1}%", rate * 100.0);
        }
        let _ = writeln!(table, "{:<10} {:>8}", "total", self.rows);
        let _ = writeln!(
            table,
            "judge {} | requests: {} sent, {} from journal, {} retried | tokens: {} prompt, {} completion | {:.1}s, {:.1} rows/s",
            self.judge_model,
            self.requests.sent,
            self.requests.from_journal,
            self.requests.retried,
            self.tokens.prompt,
            self.tokens.completion,
            self.wall_seconds,
            self.rows_per_second
        );
        self.summary_notes(&mut table);
        table
    }

    /// The lines under the summary's counts: cost, positions, endpoints, panel, reasons.
    fn summary_notes(&self, table: &mut String) {
        if let Some(cost) = &self.cost {
            let cap = cost
                .cap
                .map(|cap| format!(" of a ${cap:.2} cap"))
                .unwrap_or_default();
            let _ = writeln!(
                table,
                "cost: ${:.4} in this run, ${:.4} in all{cap}",
                cost.this_run, cost.total
            );
        }
        let decided = self.positions.first_shown_won + self.positions.second_shown_won;
        if decided > 0 {
            let _ = writeln!(
                table,
                "position: the response shown first won {} of {decided} decided judgments ({:.1}%)",
                self.positions.first_shown_won,
                100.0 * self.positions.first_shown_won as f64 / decided as f64
            );
        }
        for endpoint in &self.endpoints {
            let _ = writeln!(
                table,
                "endpoint {}: {} requests, {} failed, taken out {} times",
                endpoint.address, endpoint.requests, endpoint.failures, endpoint.taken_out
            );
        }
        let judging = &self.judging;
        if judging.panel_rows > 0 {
            let _ = writeln!(
                table,
                "panel: every judge gave the same outcome on {} of {} rows",
                judging.panel_unanimous, judging.panel_rows
            );
        }
        if judging.escalated > 0 {
            let _ = writeln!(
                table,
                "escalation: {} rows went to the escalation judge, which changed the outcome of {}",
                judging.escalated, judging.escalation_changed
            );
        }
        for (reason, count) in &self.failure_reasons {
            let _ = writeln!(table, "  {count} x {reason}");
        }
    }
}

/// 95% Wilson intervals of the outcome rates.
fn intervals(outcomes: &BTreeMap<String, u64>, rows: u64) -> BTreeMap<String, [f64; 2]> {
    outcomes
        .iter()
        .filter_map(|(name, count)| {
            let interval = stats::wilson(*count, rows)?;
            Some((name.clone(), [interval.low, interval.high]))
        })
        .collect()
}

fn mean_scores(tally: &Tally) -> BTreeMap<String, f64> {
    let scored = tally.scored;
    if scored == 0 {
        return BTreeMap::new();
    }
    let [chosen, rejected] = tally.score_sums;
    BTreeMap::from([
        ("chosen".to_owned(), chosen / scored as f64),
        ("rejected".to_owned(), rejected / scored as f64),
    ])
}

fn top_reasons(reasons: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    reasons.truncate(TOP_REASONS);
    reasons
}

/// The data file as the output folder names it: `data/NAME`.
fn data_files(output: &Path) -> Vec<String> {
    output
        .file_name()
        .map(|name| vec![format!("data/{}", name.to_string_lossy())])
        .unwrap_or_default()
}

/// Groups failure reasons that differ only in row-specific details: numbers of four digits or
/// more (ports, ids, offsets) become `N`, and the text is cut to a readable length. The
/// server's message itself is kept.
fn reason_class(reason: &str) -> String {
    const LONGEST: usize = 200;
    let mut class = String::with_capacity(reason.len().min(LONGEST));
    let mut number = String::new();
    let flush = |number: &mut String, class: &mut String| {
        if number.len() > 3 {
            class.push('N');
        } else {
            class.push_str(number);
        }
        number.clear();
    };
    for character in reason.chars() {
        if character.is_ascii_digit() {
            number.push(character);
        } else {
            flush(&mut number, &mut class);
            class.push(character);
        }
    }
    flush(&mut number, &mut class);
    if class.chars().count() > LONGEST {
        class = format!("{}...", class.chars().take(LONGEST).collect::<String>());
    }
    class
}

/// Writes a file through a temporary sibling and a rename; the error names the file.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    atomic::write(path, contents).map_err(|error| {
        ReportError::Io(std::io::Error::new(
            error.kind(),
            format!("failed to write {}: {error}", path.display()),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{DecisionPolicy, Opinion, Rating, ShownFirst};

    fn tally() -> Tally {
        let rating = |score| Rating {
            score,
            rationale: "why".into(),
            distribution: None,
        };
        let model: std::sync::Arc<str> = "judge-7b".into();
        let mut tally = Tally::default();
        let usage = Usage {
            prompt_tokens: 500,
            completion_tokens: 60,
        };
        let scores = [(5.0, 2.0), (2.0, 4.0), (3.0, 3.0), (4.0, 1.0)];
        for (index, (chosen, rejected)) in scores.into_iter().enumerate() {
            let opinion = Opinion::Ratings {
                chosen: rating(chosen),
                rejected: rating(rejected),
            };
            let policy = DecisionPolicy::default();
            let verdict = Verdict::decide(vec![(index % 2 == 0, opinion)], &policy, model.clone());
            let facts = RowFacts {
                chosen_longer: Some(index != 1),
                lengths: None,
                labelled: None,
            };
            tally.count(&verdict, &facts, usage);
        }
        let reason = "HTTP 500 from http://host/v1/chat/completions: overloaded (after 6 attempts)";
        let failed = Verdict::failed(reason.into(), ShownFirst::Chosen, model.clone());
        tally.count(&failed, &RowFacts::default(), Usage::default());
        tally.count(
            &Verdict::invalid("rejected is null".into(), model),
            &RowFacts::default(),
            Usage::default(),
        );
        tally
    }

    fn report() -> Report {
        let description = Description {
            input: "pairs.jsonl".into(),
            judge_model: "judge-7b".into(),
            template_sha256: "ab".repeat(32),
            language: Language::En,
            order: Order::Random,
            tie_margin: 0.0,
            mode: Mode::Rating,
            scoring: "score".into(),
            on_inconsistent: Inconsistent::Merge,
            calibration: None,
            template: None,
        };
        let measures = Measures {
            requests: Requests {
                sent: 5,
                from_journal: 0,
                deduplicated: 0,
                retried: 5,
                parse_retries: 0,
            },
            rows_already_done: 0,
            elapsed: Duration::from_secs(2),
            output: PathBuf::from("out/data/train-00000-of-00001.parquet"),
            spend: Some(Spend {
                this_run: 0.0123,
                total: 0.05,
                cap: Some(1.0),
                price_input: 3.0,
                price_output: 15.0,
            }),
            endpoints: Vec::new(),
        };
        Report::new(description, tally(), measures)
    }

    #[test]
    fn the_summary_table_and_the_card_read_as_written() {
        let report = report();
        insta::assert_snapshot!("summary_table", report.summary_table());
        let settings = "input = \"pairs.jsonl\"\norder = \"random\"\n";
        let plots = ["plots/outcomes.png".to_owned()];
        let extras = CardExtras {
            plots: &plots,
            settings: Some(settings),
            ..CardExtras::default()
        };
        insta::assert_snapshot!("dataset_card", card::render(&report, &extras));
    }

    #[test]
    fn counts_add_up() {
        let report = report();
        assert_eq!(report.rows, 6);
        assert_eq!(report.outcomes["swapped"], 1);
        assert_eq!(
            report.positions.first_shown_won + report.positions.second_shown_won,
            3
        );
        assert_eq!(report.tokens.prompt, 2000);
    }
}
