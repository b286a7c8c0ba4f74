//! The plots of a finished run, drawn from the exact outcome counts and from a bounded, seeded
//! sample of rows: a million rows draw the same histograms as a fair sample of them, in bounded
//! memory.

use super::plots::{self, MarginOutcome, MarginScale};
use super::stats::SplitMix64;
use crate::prompt::Mode;
use crate::verdict::{Outcome, Verdict};
use std::path::Path;

/// Rows kept for the plots at most.
const SAMPLE: usize = 50_000;

/// What the plots need of one row.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct PlotRow {
    /// Scores of the stored chosen and stored rejected responses.
    stored: Option<(f64, f64)>,
    /// Scores of the re-ranked chosen and rejected responses.
    ranked: Option<(f64, f64)>,
    /// The decision value in favour of the stored chosen response.
    margin: Option<f64>,
    /// log2 of the stored chosen response's length over the stored rejected one's, for decided
    /// rows.
    ratio: Option<f64>,
    swapped: bool,
    /// Whether the row came out a tie; absent from samples written before the field was.
    #[serde(default)]
    tie: bool,
}

/// A uniform sample of the run's rows (reservoir sampling, seeded: the same run draws the same
/// sample).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlotSample {
    rows: Vec<PlotRow>,
    seen: u64,
    #[serde(skip, default = "sampler")]
    random: SplitMix64,
}

impl PlotRow {
    fn margin_outcome(&self) -> MarginOutcome {
        if self.swapped {
            MarginOutcome::Swapped
        } else if self.tie {
            MarginOutcome::Tie
        } else {
            MarginOutcome::Kept
        }
    }
}

fn sampler() -> SplitMix64 {
    SplitMix64::new(0x5eed)
}

impl Default for PlotSample {
    fn default() -> Self {
        PlotSample {
            rows: Vec::new(),
            seen: 0,
            random: sampler(),
        }
    }
}

impl PlotSample {
    /// Adds another sample (a shard's): the union, thinned back to the sample size with each
    /// side kept in proportion to the rows it stands for.
    pub fn merge(&mut self, other: &PlotSample) {
        let total = self.seen + other.seen;
        if total == 0 {
            return;
        }
        let room = |seen: u64| {
            let share = u128::from(seen) * SAMPLE as u128 / u128::from(total);
            usize::try_from(share).unwrap_or(SAMPLE)
        };
        let (mine, theirs) = (room(self.seen).max(1), room(other.seen).max(1));
        self.rows.truncate(mine);
        self.rows.extend(other.rows.iter().take(theirs).copied());
        self.seen = total;
    }

    /// Offers one row: its verdict and the lengths of its stored chosen and rejected responses.
    pub fn push(&mut self, verdict: &Verdict, lengths: Option<(usize, usize)>) {
        let swapped = verdict.outcome == Outcome::Swapped;
        let ranked = verdict
            .chosen
            .as_ref()
            .zip(verdict.rejected.as_ref())
            .map(|(c, r)| (c.score, r.score));
        let decided = matches!(verdict.outcome, Outcome::Kept | Outcome::Swapped);
        let row = PlotRow {
            stored: ranked.map(|(c, r)| if swapped { (r, c) } else { (c, r) }),
            ranked,
            margin: verdict.margin.map(|m| if swapped { -m } else { m }),
            ratio: lengths
                .filter(|(c, r)| decided && *c > 0 && *r > 0)
                .map(|(c, r)| (c as f64 / r as f64).log2()),
            swapped,
            tie: verdict.outcome == Outcome::Tie,
        };
        self.seen += 1;
        if self.rows.len() < SAMPLE {
            self.rows.push(row);
        } else {
            let slot = self.random.below(self.seen);
            if let Some(place) = usize::try_from(slot)
                .ok()
                .and_then(|s| self.rows.get_mut(s))
            {
                *place = row;
            }
        }
    }
}

/// Draws the run's plots into `folder/plots/`; returns their paths relative to `folder`.
pub fn draw(
    folder: &Path,
    sample: &PlotSample,
    outcomes: &[(&str, u64)],
    mode: Mode,
    tie_margin: f64,
) -> Result<Vec<String>, super::ReportError> {
    let plots_folder = folder.join("plots");
    fs_err::create_dir_all(&plots_folder)?;
    let mut drawn = Vec::new();
    let mut place = |name: &str| {
        drawn.push(format!("plots/{name}"));
        plots_folder.join(name)
    };
    plots::outcomes(&place("outcomes.png"), outcomes, "Outcomes")?;
    let rows = &sample.rows;
    if mode == Mode::Rating {
        let column = |pick: fn(&PlotRow) -> Option<(f64, f64)>, first: bool| -> Vec<f64> {
            rows.iter()
                .filter_map(pick)
                .map(|(c, r)| if first { c } else { r })
                .collect()
        };
        let before = (column(|r| r.stored, true), column(|r| r.stored, false));
        let after = (column(|r| r.ranked, true), column(|r| r.ranked, false));
        let path = place("scores.png");
        plots::score_distributions(&path, (&before.0, &before.1), (&after.0, &after.1))?;
    }
    let margins: Vec<(f64, MarginOutcome)> = rows
        .iter()
        .filter_map(|r| Some((r.margin?, r.margin_outcome())))
        .collect();
    let scale = match mode {
        Mode::Rating => MarginScale::SCORES,
        Mode::Pairwise => MarginScale::PROBABILITIES,
    };
    plots::margin_histogram_on(&place("margins.png"), &margins, tie_margin, scale)?;
    let ratios: Vec<(f64, bool)> = rows
        .iter()
        .filter_map(|r| Some((r.ratio?, r.swapped)))
        .collect();
    plots::swap_rate_by_length(&place("swap-rate.png"), &ratios)?;
    Ok(drawn)
}
