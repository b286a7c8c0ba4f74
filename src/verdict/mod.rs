//! From the judge's raw answer to a decision: parsing (strict JSON, tolerant JSON, plain text,
//! score distributions), the per-row [`Verdict`], and the output columns it defines.

mod columns;
mod parse;
mod prose;

pub use columns::{VerdictColumns, fields};
pub use parse::{AnswerFormat, distribution_from_logprobs, expected_score, parse_judgment};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The judge's rating of one response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// The score, 1 to 5; an expected value (not an integer) under log-probability scoring.
    pub score: f64,
    /// The judge's short reason.
    pub rationale: String,
    /// Probabilities of the scores 1..5, when read from log-probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<[f64; 5]>,
}

/// The judge's ratings of the two responses as it saw them (A first, B second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    /// The response shown first.
    pub response_a: Rating,
    /// The response shown second.
    pub response_b: Rating,
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The judge agrees with the stored order.
    Kept,
    /// The judge prefers the stored rejected response; the pair was swapped.
    Swapped,
    /// The judge scores both alike; the stored order is kept and the row flagged.
    Tie,
    /// The judge could not score the row (transport error, unparseable answer, ...).
    Failed,
    /// The row itself cannot be judged (missing or empty response, wrong type, ...).
    Invalid,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Kept,
        Outcome::Swapped,
        Outcome::Tie,
        Outcome::Failed,
        Outcome::Invalid,
    ];

    /// The name written to the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::Swapped => "swapped",
            Outcome::Tie => "tie",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
        }
    }
}

/// Which stored response the judge saw first (as Response A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShownFirst {
    /// The stored chosen response.
    Chosen,
    /// The stored rejected response.
    Rejected,
    /// Both orders were judged.
    Both,
}

impl ShownFirst {
    /// The orders judged, `true` for the stored chosen response first.
    pub fn of(orders: &[bool]) -> ShownFirst {
        match orders {
            [true] => ShownFirst::Chosen,
            [false] => ShownFirst::Rejected,
            _ => ShownFirst::Both,
        }
    }

    /// The name written to the `shown_first` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ShownFirst::Chosen => "chosen",
            ShownFirst::Rejected => "rejected",
            ShownFirst::Both => "both",
        }
    }
}

/// Everything rejudge decided about one row; it defines the added output columns
/// ([`fields`]) and is what the report counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happened to the row.
    pub outcome: Outcome,
    /// The rating of the response now in `chosen` (after any swap); `None` when unscored.
    pub chosen: Option<Rating>,
    /// The rating of the response now in `rejected`.
    pub rejected: Option<Rating>,
    /// Why the row failed or is invalid.
    pub reason: Option<String>,
    /// Which stored response the judge saw first; `None` for rows never shown.
    pub shown_first: Option<ShownFirst>,
    /// The judge that decided the row.
    pub judge_model: Arc<str>,
}

impl Verdict {
    /// A row that cannot be judged.
    pub fn invalid(reason: String, judge_model: Arc<str>) -> Self {
        Verdict {
            outcome: Outcome::Invalid,
            chosen: None,
            rejected: None,
            reason: Some(reason),
            shown_first: None,
            judge_model,
        }
    }

    /// A row whose two responses are the same text: a tie by definition, not worth a request.
    pub fn identical(judge_model: Arc<str>) -> Self {
        Verdict {
            outcome: Outcome::Tie,
            reason: Some("chosen and rejected are identical; not sent to the judge".into()),
            ..Verdict::invalid(String::new(), judge_model)
        }
    }

    /// A row the judge could not score.
    pub fn failed(reason: String, shown_first: ShownFirst, judge_model: Arc<str>) -> Self {
        Verdict {
            outcome: Outcome::Failed,
            reason: Some(reason),
            shown_first: Some(shown_first),
            ..Verdict::invalid(String::new(), judge_model)
        }
    }

    /// Decides a scored row from the ratings of the stored chosen and rejected responses; a
    /// swapped row carries the ratings in their new places.
    pub fn decide(
        chosen: Rating,
        rejected: Rating,
        policy: &DecisionPolicy,
        shown_first: ShownFirst,
        judge_model: Arc<str>,
    ) -> Self {
        let outcome = policy.decide(chosen.score, rejected.score);
        let (chosen, rejected) = if outcome == Outcome::Swapped {
            (rejected, chosen)
        } else {
            (chosen, rejected)
        };
        Verdict {
            outcome,
            chosen: Some(chosen),
            rejected: Some(rejected),
            reason: None,
            shown_first: Some(shown_first),
            judge_model,
        }
    }
}

/// Merges the ratings of the stored (chosen, rejected) responses from several orders into one
/// pair: scores and distributions averaged, rationales kept side by side.
pub fn merge_orders(ratings: &[(Rating, Rating)]) -> (Rating, Rating) {
    let count = ratings.len().max(1) as f64;
    let mean = |pick: fn(&(Rating, Rating)) -> &Rating| {
        let score = ratings.iter().map(|r| pick(r).score).sum::<f64>() / count;
        let rationale = ratings
            .iter()
            .map(|r| pick(r).rationale.as_str())
            .collect::<Vec<_>>()
            .join(" | ");
        let distributions: Option<Vec<[f64; 5]>> =
            ratings.iter().map(|r| pick(r).distribution).collect();
        let distribution = distributions.map(|all| {
            let mut sum = [0.0; 5];
            for one in &all {
                for (total, p) in sum.iter_mut().zip(one) {
                    *total += p / count;
                }
            }
            sum
        });
        Rating {
            score,
            rationale,
            distribution,
        }
    };
    (mean(|r| &r.0), mean(|r| &r.1))
}

/// The settings that turn two scores into an outcome. Changing them needs no new judge calls.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DecisionPolicy {
    /// Score differences up to this size count as a tie (0: only equal scores tie).
    pub tie_margin: f64,
}

impl DecisionPolicy {
    /// Decides between the stored chosen and rejected responses from their scores.
    pub fn decide(&self, chosen_score: f64, rejected_score: f64) -> Outcome {
        // A small tolerance keeps expected scores that differ by rounding noise from counting
        // as a preference.
        let margin = self.tie_margin.max(0.0) + 1e-9;
        let difference = chosen_score - rejected_score;
        if difference > margin {
            Outcome::Kept
        } else if -difference > margin {
            Outcome::Swapped
        } else {
            Outcome::Tie
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decisions() {
        let strict = DecisionPolicy::default();
        assert_eq!(strict.decide(5.0, 3.0), Outcome::Kept);
        assert_eq!(strict.decide(2.0, 4.0), Outcome::Swapped);
        assert_eq!(strict.decide(3.0, 3.0), Outcome::Tie);
        let lenient = DecisionPolicy { tie_margin: 1.0 };
        assert_eq!(lenient.decide(4.0, 3.0), Outcome::Tie);
        assert_eq!(lenient.decide(3.0, 4.5), Outcome::Swapped);
    }

    proptest! {
        #[test]
        fn swapping_the_scores_mirrors_the_decision(a in 1.0f64..5.0, b in 1.0f64..5.0, margin in 0.0f64..2.0) {
            let policy = DecisionPolicy { tie_margin: margin };
            let mirrored = match policy.decide(a, b) {
                Outcome::Kept => Outcome::Swapped,
                Outcome::Swapped => Outcome::Kept,
                other => other,
            };
            prop_assert_eq!(policy.decide(b, a), mirrored);
        }
    }
}
