//! The run's statistics: `report.json`, the summary table, and a dataset card for the Hub.

use crate::judge::Usage;
use crate::prompt::{Language, Order, PromptBuilder};
use crate::run::{RunConfig, RunError};
use crate::verdict::Outcome;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many distinct failure reasons the report lists.
const TOP_REASONS: usize = 5;

/// Request counters shared by the rows of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests sent to the judge.
    pub sent: AtomicU64,
    /// Answers served from the journal.
    pub from_journal: AtomicU64,
    /// Attempts beyond the first, over all requests.
    pub retried: AtomicU64,
    /// Requests asked again because the first answer did not parse.
    pub parse_retries: AtomicU64,
}

/// Token totals.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

/// Request totals.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Requests {
    /// Sent to the judge in this run.
    pub sent: u64,
    /// Served from the journal, with no call.
    pub from_journal: u64,
    /// Retries after transient failures.
    pub retried: u64,
    /// Asked again because an answer did not parse.
    pub parse_retries: u64,
}

/// Which stored response was shown to the judge first.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Positions {
    /// The order policy.
    pub policy: String,
    /// Judged rows where the stored chosen response was Response A.
    pub chosen_first: u64,
    /// Judged rows where the stored rejected response was Response A.
    pub rejected_first: u64,
    /// Decided rows (kept or swapped) won by the response shown first; far from half of the
    /// decided rows, it points at a judge that favours a position.
    pub first_shown_won: u64,
    /// Decided rows won by the response shown second.
    pub second_shown_won: u64,
}

/// The statistics of a run, written to `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The rejudge version that wrote it.
    pub rejudge_version: String,
    /// The input file or folder.
    pub input: PathBuf,
    /// The output data file.
    pub output: PathBuf,
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
    /// Which stored response was shown first.
    pub positions: Positions,
    /// Mean score of the (re-ranked) chosen and rejected responses over scored rows.
    pub mean_scores: BTreeMap<String, f64>,
    /// The most common failure reasons with their counts.
    pub failure_reasons: Vec<(String, u64)>,
    #[serde(skip)]
    score_sums: [f64; 2],
    #[serde(skip)]
    reasons: BTreeMap<String, u64>,
}

impl Report {
    /// An empty report for a run.
    pub fn new(judge_model: &str, prompt: &PromptBuilder, config: &RunConfig) -> Self {
        Report {
            rejudge_version: env!("CARGO_PKG_VERSION").to_owned(),
            input: config.input.clone(),
            output: PathBuf::new(),
            rows: 0,
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.as_str().to_owned(), 0))
                .collect(),
            rates: BTreeMap::new(),
            tokens: Tokens::default(),
            requests: Requests::default(),
            rows_already_done: 0,
            wall_seconds: 0.0,
            rows_per_second: 0.0,
            judge_model: judge_model.to_owned(),
            template_sha256: prompt.template_hash().to_owned(),
            language: prompt.language(),
            tie_margin: config.policy.tie_margin,
            positions: Positions {
                policy: match config.order {
                    Order::ChosenFirst => "chosen-first",
                    Order::RejectedFirst => "rejected-first",
                    Order::Random => "random",
                    Order::Both => "both",
                }
                .to_owned(),
                ..Positions::default()
            },
            mean_scores: BTreeMap::new(),
            failure_reasons: Vec::new(),
            score_sums: [0.0; 2],
            reasons: BTreeMap::new(),
        }
    }

    /// Counts one finished row.
    pub fn count(&mut self, outcome: Outcome, usage: Usage, record: &Map<String, Value>) {
        self.rows += 1;
        *self
            .outcomes
            .entry(outcome.as_str().to_owned())
            .or_default() += 1;
        self.tokens.prompt += usage.prompt_tokens;
        self.tokens.completion += usage.completion_tokens;
        let shown_first = record.get("shown_first").and_then(Value::as_str);
        match shown_first {
            Some("chosen") => self.positions.chosen_first += 1,
            Some("rejected") => self.positions.rejected_first += 1,
            _ => {}
        }
        // The stored chosen response won a kept row, the stored rejected one a swapped row.
        match (outcome, shown_first) {
            (Outcome::Kept, Some("chosen")) | (Outcome::Swapped, Some("rejected")) => {
                self.positions.first_shown_won += 1
            }
            (Outcome::Kept, Some("rejected")) | (Outcome::Swapped, Some("chosen")) => {
                self.positions.second_shown_won += 1
            }
            _ => {}
        }
        let score = |column: &str| record.get(column).and_then(Value::as_f64);
        if let (Some(chosen), Some(rejected)) = (score("chosen_score"), score("rejected_score")) {
            self.score_sums[0] += chosen;
            self.score_sums[1] += rejected;
        }
        if let Some(reason) = record.get("failure_reason").and_then(Value::as_str) {
            *self.reasons.entry(reason_class(reason)).or_default() += 1;
        }
    }

    /// Completes the totals at the end of a run.
    pub fn finish(&mut self, counters: &Counters, elapsed: Duration, output: PathBuf) {
        self.output = output;
        self.requests = Requests {
            sent: counters.sent.load(Ordering::Relaxed),
            from_journal: counters.from_journal.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
            parse_retries: counters.parse_retries.load(Ordering::Relaxed),
        };
        self.wall_seconds = elapsed.as_secs_f64();
        self.rows_per_second = if self.wall_seconds > 0.0 {
            self.rows as f64 / self.wall_seconds
        } else {
            0.0
        };
        let rows = self.rows.max(1) as f64;
        self.rates = self
            .outcomes
            .iter()
            .map(|(name, count)| (name.clone(), *count as f64 / rows))
            .collect();
        let scored =
            (self.outcomes["kept"] + self.outcomes["swapped"] + self.outcomes["tie"]) as f64;
        if scored > 0.0 {
            self.mean_scores
                .insert("chosen".into(), self.score_sums[0] / scored);
            self.mean_scores
                .insert("rejected".into(), self.score_sums[1] / scored);
        }
        let mut reasons: Vec<(String, u64)> =
            std::mem::take(&mut self.reasons).into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons.truncate(TOP_REASONS);
        self.failure_reasons = reasons;
    }

    /// Writes `report.json` and the dataset card `README.md` into the output folder, atomically.
    pub fn write(&self, folder: &Path) -> Result<(), RunError> {
        let json = serde_json::to_string_pretty(self).expect("a report serialises; this is a bug");
        write_atomically(&folder.join("report.json"), json.as_bytes())?;
        write_atomically(&folder.join("README.md"), self.dataset_card().as_bytes())
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
        let decided = self.positions.first_shown_won + self.positions.second_shown_won;
        if decided > 0 {
            let _ = writeln!(
                table,
                "position: the response shown first won {} of {decided} decided rows ({:.1}%)",
                self.positions.first_shown_won,
                100.0 * self.positions.first_shown_won as f64 / decided as f64
            );
        }
        for (reason, count) in &self.failure_reasons {
            let _ = writeln!(table, "  {count} x {reason}");
        }
        table
    }

    fn dataset_card(&self) -> String {
        let mut card = String::from(
            "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train*\ntags:\n- dpo\n- preference\n- rejudge\n---\n\n",
        );
        let _ = writeln!(card, "# Re-ranked preference pairs\n");
        let _ = writeln!(
            card,
            "Every pair of `{}` was rated by the judge `{}` with rejudge {} (template sha256 `{}`). \
             Pairs the judge preferred the other way round were swapped; ties keep their order and are \
             flagged in the `outcome` column. Every input row is kept.\n",
            self.input.display(),
            self.judge_model,
            self.rejudge_version,
            &self.template_sha256[..self.template_sha256.len().min(12)]
        );
        let _ = writeln!(card, "```\n{}```", self.summary_table());
        card
    }
}

/// Groups failure reasons that differ only in details (row-specific numbers and excerpts).
fn reason_class(reason: &str) -> String {
    let head: String = reason.split(": ").take(2).collect::<Vec<_>>().join(": ");
    head.chars().take(120).collect()
}

/// Writes a file through a temporary sibling and a rename.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), RunError> {
    let error = |e: std::io::Error| RunError::Report {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, contents).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}
