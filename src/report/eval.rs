//! `eval.json`: how the judge's verdicts agree with human labels, from one typed row per pair.
//!
//! Each pair's decision value is oriented toward the human-preferred response, so agreement,
//! coverage and the margin curve come from [`stats`](super::stats) directly; Cohen's kappa is
//! computed on positions (which of the two input columns is better), since "the preferred
//! response is preferred" is no category at all.

use super::stats::{self, CurvePoint, Interval, Label, Tallies};
use super::{Requests, Tokens};
use crate::verdict::{OrderResult, Outcome};
use serde::Serialize;
use std::collections::BTreeMap;

/// Bootstrap resamples for the kappa interval: the interval's ends move by less than 0.01
/// between seeds at this count on a few hundred pairs.
const RESAMPLES: usize = 2_000;

/// One evaluated pair, as the statistics need it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EvalRow {
    /// The outcome: kept means the judge agrees with the human label, swapped that it
    /// disagrees.
    pub outcome: Outcome,
    /// The decision value toward the human-preferred response; `None` when unscored.
    pub decision: Option<f64>,
    /// Whether the human-preferred response is the first of the pair in the input's order
    /// (for a prompt/chosen/rejected set, in a seeded random order, so that the labels split).
    pub gold_first: bool,
    /// Whether the human-preferred response is the longer one; `None` for equal lengths.
    pub gold_longer: Option<bool>,
    /// The row's category, if the input has a category column.
    pub category: Option<String>,
    /// Each judged order.
    pub orders: Vec<OrderResult>,
    /// Whether the orders agreed, when both were judged.
    pub consistent: Option<bool>,
}

impl EvalRow {
    fn judged(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Kept | Outcome::Swapped | Outcome::Tie
        )
    }

    /// The judge's label in input positions.
    fn judge_label(&self) -> Label {
        match (self.outcome, self.gold_first) {
            (Outcome::Kept, true) | (Outcome::Swapped, false) => Label::First,
            (Outcome::Kept, false) | (Outcome::Swapped, true) => Label::Second,
            _ => Label::Tie,
        }
    }

    fn gold_label(&self) -> Label {
        if self.gold_first {
            Label::First
        } else {
            Label::Second
        }
    }
}

/// A share with its count and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    /// The share, 0 to 1.
    pub value: f64,
    /// Rows it is out of.
    pub of: u64,
    /// Its 95% Wilson interval.
    pub interval: [f64; 2],
}

fn share(part: u64, whole: u64) -> Option<Share> {
    let interval = stats::wilson(part, whole)?;
    Some(Share {
        value: part as f64 / whole as f64,
        of: whole,
        interval: [interval.low, interval.high],
    })
}

/// How often the judge and the human labels pick the longer response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LengthBias {
    /// Decided pairs (of responses of different lengths) the judge gave to the longer one.
    pub judge: Option<Share>,
    /// Pairs (of different lengths) whose human-preferred response is the longer one.
    pub gold: Option<Share>,
}

/// The figures of one category.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CategoryFigures {
    /// Pairs judged.
    pub pairs: u64,
    /// Agreement with ties counting one half.
    pub agreement: Option<f64>,
    /// Agreement among decided pairs.
    pub agreement_decided: Option<f64>,
    /// Share of pairs decided.
    pub coverage: Option<f64>,
}

impl CategoryFigures {
    fn of(tallies: Tallies) -> Self {
        CategoryFigures {
            pairs: tallies.total(),
            agreement: tallies.agreement(),
            agreement_decided: tallies.agreement_decided(),
            coverage: tallies.coverage(),
        }
    }
}

/// The smallest margin whose decided pairs reach a target agreement.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Calibration {
    /// The agreement asked for, among decided pairs.
    pub target_agreement: f64,
    /// The margin found: decision values up to it are ties.
    pub margin: f64,
    /// Agreement among decided pairs at that margin.
    pub agreement_decided: f64,
    /// Share of pairs decided at that margin.
    pub coverage: f64,
    /// Pairs it was fitted on.
    pub pairs: u64,
    /// The protocol it holds for: a margin means nothing under another one.
    pub protocol: Protocol,
}

impl Calibration {
    /// Reads a `calibration.json`.
    pub fn load(path: &std::path::Path) -> Result<Self, super::ReportError> {
        let text = fs_err::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|source| super::ReportError::Calibration {
            path: path.to_path_buf(),
            message: source.to_string(),
        })
    }

    /// Refuses a calibration measured under another protocol: a margin is a score difference
    /// under one and a probability difference under the other.
    pub fn check(&self, mode: &str, scoring: &str) -> Result<(), super::ReportError> {
        let fitted = &self.protocol;
        if fitted.mode == mode && fitted.scoring == scoring {
            return Ok(());
        }
        Err(super::ReportError::Calibration {
            path: std::path::PathBuf::new(),
            message: format!(
                "it was fitted under --mode {} --scoring {}, this run uses --mode {mode} --scoring {scoring}\nhint: calibrate again with `rejudge eval` under this run's protocol",
                fitted.mode, fitted.scoring
            ),
        })
    }
}

/// What a margin was measured under.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Protocol {
    /// The judge model.
    pub judge_model: String,
    /// `rating` or `pairwise`.
    pub mode: String,
    /// `score` or `logprobs`.
    pub scoring: String,
    /// The order policy.
    pub order: String,
    /// What disagreeing orders give.
    pub on_inconsistent: String,
    /// SHA-256 of the rubric and template.
    pub template_sha256: String,
}

/// One point of the agreement and coverage curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MarginPoint {
    /// The margin.
    pub margin: f64,
    /// Agreement with ties counting one half.
    pub agreement: f64,
    /// Agreement among decided pairs.
    pub agreement_decided: Option<f64>,
    /// Share of pairs decided.
    pub coverage: f64,
}

impl From<CurvePoint> for MarginPoint {
    fn from(point: CurvePoint) -> Self {
        MarginPoint {
            margin: point.margin,
            agreement: point.agreement,
            agreement_decided: point.agreement_decided,
            coverage: point.coverage,
        }
    }
}

/// `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// What was measured.
    pub protocol: Protocol,
    /// Rows in the input.
    pub rows: u64,
    /// Pairs the judge gave a verdict (kept, swapped or tie).
    pub judged: u64,
    /// Pairs that failed or could not be judged.
    pub unjudged: u64,
    /// The margin used for the outcomes.
    pub margin: f64,
    /// Agreement with the human labels, ties counting one half.
    pub agreement: Option<f64>,
    /// Agreement among decided pairs.
    pub agreement_decided: Option<f64>,
    /// Share of judged pairs the judge decided.
    pub coverage: Option<f64>,
    /// Pairs the judge agreed with, disagreed with, and tied.
    pub counts: BTreeMap<String, u64>,
    /// Cohen's kappa between the judge and the human labels, on positions.
    pub kappa: Option<f64>,
    /// Its 95% bootstrap interval (seeded: the same run gives the same interval).
    pub kappa_ci: Option<[f64; 2]>,
    /// Pairs judged in both orders whose two orders gave the same outcome.
    pub position_consistency: Option<Share>,
    /// Decided single-order judgments won by the response shown first.
    pub first_position_win_rate: Option<Share>,
    /// The judge's and the humans' taste for length.
    pub length_bias: LengthBias,
    /// Figures per category, when the input has a category column.
    pub categories: BTreeMap<String, CategoryFigures>,
    /// Agreement and coverage at every margin the data distinguishes (at most 200 points).
    pub margin_curve: Vec<MarginPoint>,
    /// The margin that reaches `--target-agreement`, when asked for.
    pub calibration: Option<Calibration>,
    /// Tokens used.
    pub tokens: Tokens,
    /// Requests sent and reused.
    pub requests: Requests,
}

/// What `eval` was asked for besides the run itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EvalSettings {
    /// Find the smallest margin whose decided pairs reach this agreement.
    pub target_agreement: Option<f64>,
    /// Seed of the bootstrap.
    pub seed: u64,
}

/// The evaluation of a finished labelled run.
pub fn evaluate(
    report: &super::Report,
    tally: &super::Tally,
    settings: &EvalSettings,
) -> Evaluation {
    let protocol = Protocol {
        judge_model: report.judge_model.clone(),
        mode: report.mode.as_str().to_owned(),
        scoring: report.scoring.clone(),
        order: report.positions.policy.clone(),
        on_inconsistent: match report.on_inconsistent {
            crate::verdict::Inconsistent::Merge => "merge".to_owned(),
            crate::verdict::Inconsistent::Tie => "tie".to_owned(),
        },
        template_sha256: report.template_sha256.clone(),
    };
    let context = EvalContext {
        protocol,
        margin: report.tie_margin,
        target_agreement: settings.target_agreement,
        seed: settings.seed,
        tokens: report.tokens,
        requests: report.requests,
    };
    Evaluation::new(tally.labelled(), context)
}

/// Everything an evaluation is computed from besides its rows.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// What was measured.
    pub protocol: Protocol,
    /// The margin of the run's outcomes.
    pub margin: f64,
    /// `--target-agreement`, if given.
    pub target_agreement: Option<f64>,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Tokens used.
    pub tokens: Tokens,
    /// Requests.
    pub requests: Requests,
}

impl Evaluation {
    /// The evaluation of `rows`.
    pub fn new(rows: &[EvalRow], context: EvalContext) -> Self {
        let judged: Vec<&EvalRow> = rows.iter().filter(|r| r.judged()).collect();
        let tallies = tally(judged.iter().copied());
        let decisions: Vec<f64> = judged.iter().filter_map(|r| r.decision).collect();
        let labels: Vec<(Label, Label)> = judged
            .iter()
            .map(|r| (r.judge_label(), r.gold_label()))
            .collect();
        let kappa_ci = stats::bootstrap_interval(labels.len(), RESAMPLES, context.seed, |picks| {
            let sample: Vec<(Label, Label)> = picks.iter().map(|&i| labels[i]).collect();
            stats::cohen_kappa(&sample)
        });
        let calibration = context
            .target_agreement
            .and_then(|target| calibrate(&decisions, target, &context.protocol));
        Evaluation {
            rows: rows.len() as u64,
            judged: tallies.total(),
            unjudged: (rows.len() - judged.len()) as u64,
            margin: context.margin,
            agreement: tallies.agreement(),
            agreement_decided: tallies.agreement_decided(),
            coverage: tallies.coverage(),
            counts: BTreeMap::from([
                ("agree".to_owned(), tallies.agree),
                ("disagree".to_owned(), tallies.disagree),
                ("tie".to_owned(), tallies.tie),
            ]),
            kappa: stats::cohen_kappa(&labels),
            kappa_ci: kappa_ci.map(|Interval { low, high }| [low, high]),
            position_consistency: consistency(&judged),
            first_position_win_rate: first_position(&judged),
            length_bias: length_bias(&judged),
            categories: categories(&judged),
            margin_curve: thinned(stats::margin_curve(&decisions)),
            calibration,
            tokens: context.tokens,
            requests: context.requests,
            protocol: context.protocol,
        }
    }

    /// Writes `eval.json`, `calibration.json` (when a target was given and reached) and the
    /// agreement and coverage plot into the output folder.
    pub fn write(&self, folder: &std::path::Path) -> Result<(), super::ReportError> {
        let json =
            serde_json::to_string_pretty(self).expect("an evaluation serialises; this is a bug");
        super::write_atomically(&folder.join("eval.json"), json.as_bytes())?;
        if let Some(calibration) = &self.calibration {
            let json = serde_json::to_string_pretty(calibration)
                .expect("a calibration serialises; this is a bug");
            super::write_atomically(&folder.join("calibration.json"), json.as_bytes())?;
        }
        let curve: Vec<(f64, f64, f64)> = self
            .margin_curve
            .iter()
            .filter_map(|p| Some((p.margin, p.agreement_decided?, p.coverage)))
            .collect();
        let marked = self.calibration.as_ref().map(|c| c.margin);
        super::plots::agreement_coverage(&folder.join("agreement.png"), &curve, marked)?;
        Ok(())
    }

    fn category_table(&self) -> String {
        use std::fmt::Write as _;
        if self.categories.is_empty() {
            return String::new();
        }
        let percent = |value: Option<f64>| {
            value.map_or_else(|| "n/a".to_owned(), |v| format!("{:.1}%", 100.0 * v))
        };
        let mut text = String::from(
            "\n| category | pairs | agreement | decided agreement | coverage |\n|---|---:|---:|---:|---:|\n",
        );
        for (name, figures) in &self.categories {
            let _ = writeln!(
                text,
                "| {name} | {} | {} | {} | {} |",
                figures.pairs,
                percent(figures.agreement),
                percent(figures.agreement_decided),
                percent(figures.coverage)
            );
        }
        text
    }

    /// The Markdown summary printed at the end of `rejudge eval`.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let percent = |value: Option<f64>| {
            value.map_or_else(|| "n/a".to_owned(), |v| format!("{:.1}%", 100.0 * v))
        };
        let with_share = |share: Option<Share>| match share {
            Some(s) => format!(
                "{:.1}% of {} (95% CI {:.1}-{:.1}%)",
                100.0 * s.value,
                s.of,
                100.0 * s.interval[0],
                100.0 * s.interval[1]
            ),
            None => "n/a".to_owned(),
        };
        let protocol = &self.protocol;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "## Judge vs human labels\n\n{} | {} | scoring {} | order {} | margin {}\n",
            protocol.judge_model, protocol.mode, protocol.scoring, protocol.order, self.margin
        );
        let _ = writeln!(text, "| measure | value |\n|---|---|");
        let kappa = match (self.kappa, self.kappa_ci) {
            (Some(k), Some([low, high])) => format!("{k:.3} (95% CI {low:.3} to {high:.3})"),
            (Some(k), None) => format!("{k:.3}"),
            _ => "n/a".to_owned(),
        };
        let rows = [
            ("pairs judged", format!("{} of {}", self.judged, self.rows)),
            ("agreement (ties count 1/2)", percent(self.agreement)),
            ("agreement among decided", percent(self.agreement_decided)),
            ("coverage (decided)", percent(self.coverage)),
            ("Cohen's kappa", kappa),
            (
                "position consistency",
                with_share(self.position_consistency),
            ),
            (
                "first position wins",
                with_share(self.first_position_win_rate),
            ),
            ("judge picks the longer", with_share(self.length_bias.judge)),
            ("humans pick the longer", with_share(self.length_bias.gold)),
        ];
        for (name, value) in rows {
            let _ = writeln!(text, "| {name} | {value} |");
        }
        if let Some(calibration) = &self.calibration {
            let _ = writeln!(
                text,
                "\ncalibration: margin {:.4} reaches {:.1}% agreement among decided pairs at {:.1}% coverage (target {:.1}%)",
                calibration.margin,
                100.0 * calibration.agreement_decided,
                100.0 * calibration.coverage,
                100.0 * calibration.target_agreement
            );
        }
        text.push_str(&self.category_table());
        text
    }
}

fn tally<'a>(rows: impl Iterator<Item = &'a EvalRow>) -> Tallies {
    let mut tallies = Tallies::default();
    for row in rows {
        match row.outcome {
            Outcome::Kept => tallies.agree += 1,
            Outcome::Swapped => tallies.disagree += 1,
            _ => tallies.tie += 1,
        }
    }
    tallies
}

fn calibrate(decisions: &[f64], target: f64, protocol: &Protocol) -> Option<Calibration> {
    let point = stats::calibrate(decisions, target)?;
    Some(Calibration {
        target_agreement: target,
        margin: point.margin,
        agreement_decided: point.agreement_decided?,
        coverage: point.coverage,
        pairs: decisions.len() as u64,
        protocol: protocol.clone(),
    })
}

fn consistency(rows: &[&EvalRow]) -> Option<Share> {
    let both: Vec<bool> = rows.iter().filter_map(|r| r.consistent).collect();
    let same = both.iter().filter(|same| **same).count();
    share(same as u64, both.len() as u64)
}

fn first_position(rows: &[&EvalRow]) -> Option<Share> {
    let decided: Vec<bool> = rows
        .iter()
        .flat_map(|r| r.orders.iter().filter_map(|order| order.first_won()))
        .collect();
    let won = decided.iter().filter(|won| **won).count();
    share(won as u64, decided.len() as u64)
}

fn length_bias(rows: &[&EvalRow]) -> LengthBias {
    let different: Vec<&&EvalRow> = rows.iter().filter(|r| r.gold_longer.is_some()).collect();
    let gold_longer = different
        .iter()
        .filter(|r| r.gold_longer == Some(true))
        .count();
    let decided: Vec<bool> = different
        .iter()
        .filter_map(|r| {
            let longer_is_gold = r.gold_longer?;
            match r.outcome {
                Outcome::Kept => Some(longer_is_gold),
                Outcome::Swapped => Some(!longer_is_gold),
                _ => None,
            }
        })
        .collect();
    let longer_won = decided.iter().filter(|won| **won).count();
    LengthBias {
        judge: share(longer_won as u64, decided.len() as u64),
        gold: share(gold_longer as u64, different.len() as u64),
    }
}

fn categories(rows: &[&EvalRow]) -> BTreeMap<String, CategoryFigures> {
    let mut grouped: BTreeMap<String, Vec<&EvalRow>> = BTreeMap::new();
    for row in rows {
        if let Some(category) = &row.category {
            grouped.entry(category.clone()).or_default().push(row);
        }
    }
    grouped
        .into_iter()
        .map(|(name, rows)| (name, CategoryFigures::of(tally(rows.into_iter()))))
        .collect()
}

/// At most 200 points of the curve, evenly spread, the first and last kept: enough to draw and
/// to read, and a bounded `eval.json` for any set.
fn thinned(curve: Vec<CurvePoint>) -> Vec<MarginPoint> {
    const POINTS: usize = 200;
    if curve.len() <= POINTS {
        return curve.into_iter().map(MarginPoint::from).collect();
    }
    let last = curve.len() - 1;
    (0..POINTS)
        .map(|i| curve[i * last / (POINTS - 1)])
        .map(MarginPoint::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol() -> Protocol {
        Protocol {
            judge_model: "judge".into(),
            mode: "pairwise".into(),
            scoring: "logprobs".into(),
            order: "both".into(),
            on_inconsistent: "merge".into(),
            template_sha256: "ab".into(),
        }
    }

    fn row(outcome: Outcome, decision: f64, gold_first: bool) -> EvalRow {
        EvalRow {
            outcome,
            decision: Some(decision),
            gold_first,
            gold_longer: Some(gold_first),
            category: Some(if gold_first { "a" } else { "b" }.into()),
            orders: vec![
                OrderResult {
                    chosen_first: true,
                    outcome,
                },
                OrderResult {
                    chosen_first: false,
                    outcome: Outcome::Kept,
                },
            ],
            consistent: Some(outcome == Outcome::Kept),
        }
    }

    /// Six pairs worked out by hand: 3 agree, 1 disagrees, 1 ties, 1 failed.
    #[test]
    fn figures_from_rows() {
        let rows = vec![
            row(Outcome::Kept, 0.8, true),
            row(Outcome::Kept, 0.4, false),
            row(Outcome::Kept, 0.2, true),
            row(Outcome::Swapped, -0.6, false),
            row(Outcome::Tie, 0.0, true),
            EvalRow {
                outcome: Outcome::Failed,
                decision: None,
                ..row(Outcome::Failed, 0.0, true)
            },
        ];
        let context = EvalContext {
            protocol: protocol(),
            margin: 0.0,
            target_agreement: Some(1.0),
            seed: 7,
            tokens: Tokens::default(),
            requests: Requests::default(),
        };
        let evaluation = Evaluation::new(&rows, context);
        assert_eq!((evaluation.judged, evaluation.unjudged), (5, 1));
        // (3 + 0.5) / 5 and 3 / 4 and 4 / 5.
        assert_eq!(evaluation.agreement, Some(0.7));
        assert_eq!(evaluation.agreement_decided, Some(0.75));
        assert_eq!(evaluation.coverage, Some(0.8));
        // Judge labels: First, Second, First, First, Tie; gold: First, Second, First, Second,
        // First. p_o = 3/5; judge marginals 3/5 First, 1/5 Second, 1/5 Tie; gold 3/5 and 2/5;
        // p_e = 9/25 + 2/25 = 11/25; kappa = (15/25 - 11/25) / (14/25) = 4/14.
        assert!((evaluation.kappa.unwrap() - 4.0 / 14.0).abs() < 1e-12);
        let ci = evaluation.kappa_ci.unwrap();
        assert!(ci[0] <= ci[1]);
        // The second order is always kept: consistent for the three kept rows only.
        assert_eq!(evaluation.position_consistency.unwrap().value, 3.0 / 5.0);
        // Margin 0.6 leaves 0.8 (agree) decided and the rest tied: agreement 1 at coverage 1/5;
        // 0.4 would leave -0.6 decided.
        let calibration = evaluation.calibration.unwrap();
        assert_eq!((calibration.margin, calibration.coverage), (0.6, 0.2));
        assert_eq!(evaluation.categories["a"].pairs, 3);
        // Gold is the longer response in rows 1, 3 and 5. Of the decided rows, the judge's winner
        // was the longer response in rows 1 and 3 (gold, longer), and 4 (the other, longer),
        // the shorter one in row 2 (gold, shorter): 3 of 4.
        assert_eq!(evaluation.length_bias.gold.unwrap().value, 3.0 / 5.0);
        assert_eq!(evaluation.length_bias.judge.unwrap().value, 0.75);
    }
}
