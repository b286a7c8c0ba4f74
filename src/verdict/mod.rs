//! From the judge's raw answer to a decision: parsing (strict JSON, tolerant JSON, plain text,
//! score distributions), the per-row [`Verdict`], and the output columns it defines.

mod columns;
mod parse;
mod prose;

pub use columns::{VerdictColumns, fields};
pub use parse::{
    AnswerFormat, distribution_from_logprobs, expected_score, parse_judgment, parse_preference,
};

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

/// What one request said about the pair as the judge saw it (A first, B second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Judgment {
    /// A score for each response (the rating protocol).
    Ratings {
        /// The response shown first.
        response_a: Rating,
        /// The response shown second.
        response_b: Rating,
    },
    /// Which response is better (the pairwise protocol).
    Preference(Preference),
}

/// The pairwise protocol's answer: a winner, and under log-probability scoring how likely each
/// answer was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preference {
    /// The answer the judge wrote.
    pub winner: Winner,
    /// Probabilities of A, tie and B at the verdict token, when read from log-probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<[f64; 3]>,
    /// The judge's short reason (empty under `--max-tokens 1`).
    #[serde(default)]
    pub reason: String,
}

/// A pairwise answer, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    /// The response shown first.
    A,
    /// Neither is better.
    Tie,
    /// The response shown second.
    B,
}

impl Judgment {
    /// The judgment in terms of the stored responses: `chosen_first` says whether the stored
    /// chosen response was shown as A.
    pub fn opinion(self, chosen_first: bool) -> Opinion {
        match self {
            Judgment::Ratings {
                response_a,
                response_b,
            } => {
                let (chosen, rejected) = if chosen_first {
                    (response_a, response_b)
                } else {
                    (response_b, response_a)
                };
                Opinion::Ratings { chosen, rejected }
            }
            Judgment::Preference(preference) => {
                let [a, tie, b] = preference.probabilities.unwrap_or(match preference.winner {
                    Winner::A => [1.0, 0.0, 0.0],
                    Winner::Tie => [0.0, 1.0, 0.0],
                    Winner::B => [0.0, 0.0, 1.0],
                });
                let probabilities = if chosen_first {
                    [a, tie, b]
                } else {
                    [b, tie, a]
                };
                Opinion::Preference {
                    probabilities,
                    reason: preference.reason,
                }
            }
        }
    }
}

/// One request's judgment of the stored chosen and rejected responses, whichever was shown
/// first.
#[derive(Debug, Clone, PartialEq)]
pub enum Opinion {
    /// Both responses rated.
    Ratings {
        /// The stored chosen response's rating.
        chosen: Rating,
        /// The stored rejected response's rating.
        rejected: Rating,
    },
    /// A preference between them.
    Preference {
        /// Probabilities that the stored chosen response is better, that they tie, and that the
        /// stored rejected response is better.
        probabilities: [f64; 3],
        /// The judge's reason.
        reason: String,
    },
}

impl Opinion {
    /// How strongly the opinion favours the stored chosen response: the score difference
    /// (rating, -4 to 4) or the probability difference (pairwise, -1 to 1).
    pub fn decision(&self) -> f64 {
        match self {
            Opinion::Ratings { chosen, rejected } => chosen.score - rejected.score,
            Opinion::Preference { probabilities, .. } => probabilities[0] - probabilities[2],
        }
    }
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

/// How one order of a pair came out, for the position statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderResult {
    /// Whether the stored chosen response was shown first.
    pub chosen_first: bool,
    /// The outcome this order alone would give (kept, swapped or tie).
    pub outcome: Outcome,
}

impl OrderResult {
    /// Whether the response shown first won; `None` for a tie.
    pub fn first_won(self) -> Option<bool> {
        match self.outcome {
            Outcome::Kept => Some(self.chosen_first),
            Outcome::Swapped => Some(!self.chosen_first),
            _ => None,
        }
    }
}

/// Everything rejudge decided about one row; it defines the added output columns
/// ([`fields`]) and is what the report counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happened to the row.
    pub outcome: Outcome,
    /// The rating of the response now in `chosen` (after any swap); `None` when unscored or
    /// under the pairwise protocol.
    pub chosen: Option<Rating>,
    /// The rating of the response now in `rejected`.
    pub rejected: Option<Rating>,
    /// Under the pairwise protocol: probabilities that the response now in `chosen` is better,
    /// that they tie, and that the one now in `rejected` is; and the judge's reasons.
    pub preference: Option<([f64; 3], String)>,
    /// The merged decision value in favour of the response now in `chosen` (score or
    /// probability difference); `None` when unscored.
    pub margin: Option<f64>,
    /// Each judged order on its own (every judge's, for a panel).
    pub orders: Vec<OrderResult>,
    /// For a panel: each judge's own outcome.
    pub members: Vec<(Arc<str>, Outcome)>,
    /// Whether every judge's orders gave the same outcome; `None` with one order each.
    pub consistent: Option<bool>,
    /// For an escalated row: the outcome before escalation.
    pub escalated_from: Option<Outcome>,
    /// Why the row failed or is invalid, or a note on a tie decided without the judge.
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
            preference: None,
            margin: None,
            orders: Vec::new(),
            members: Vec::new(),
            consistent: None,
            escalated_from: None,
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

    /// Decides a row from the opinions of each judged order (`true`: the stored chosen response
    /// was shown first). A swapped row carries its ratings and preference in their new places.
    pub fn decide(
        opinions: Vec<(bool, Opinion)>,
        policy: &DecisionPolicy,
        judge_model: Arc<str>,
    ) -> Self {
        let assessment = Assessment::of(opinions, policy, judge_model.clone(), 1.0);
        Verdict::from_panel(vec![assessment], policy, None, judge_model)
    }

    /// Decides a row from several judges' assessments: their decision values and opinions are
    /// averaged by weight, and when `max_spread` is set, judges whose decision values lie
    /// further apart than it make the row a tie. One assessment is a single judge's verdict.
    pub fn from_panel(
        assessments: Vec<Assessment>,
        policy: &DecisionPolicy,
        max_spread: Option<f64>,
        judge_model: Arc<str>,
    ) -> Self {
        let (decision, spread) = weighted_decision(&assessments);
        let split = max_spread.is_some_and(|limit| spread > limit);
        let outcome = if split {
            Outcome::Tie
        } else {
            policy.decide(decision)
        };
        let members = if assessments.len() > 1 {
            assessments
                .iter()
                .map(|a| (a.judge.clone(), a.outcome))
                .collect()
        } else {
            Vec::new()
        };
        let orders: Vec<OrderResult> = assessments
            .iter()
            .flat_map(|a| a.orders.iter().copied())
            .collect();
        let consistent = assessments.iter().any(|a| a.orders.len() > 1).then(|| {
            assessments
                .iter()
                .all(|a| a.orders.windows(2).all(|p| p[0].outcome == p[1].outcome))
        });
        let shown: Vec<bool> = assessments
            .first()
            .map(|a| a.orders.iter().map(|o| o.chosen_first).collect())
            .unwrap_or_default();
        let opinion = merge(
            assessments
                .into_iter()
                .map(|a| (a.opinion, a.weight))
                .collect(),
        );
        let swapped = outcome == Outcome::Swapped;
        let mut verdict = Verdict {
            outcome,
            margin: Some(if swapped { -decision } else { decision }),
            orders,
            members,
            consistent,
            shown_first: Some(ShownFirst::of(&shown)),
            ..Verdict::invalid(String::new(), judge_model)
        };
        verdict.reason = None;
        verdict.place(opinion, swapped);
        verdict
    }

    /// Puts the merged ratings or preference where the outcome leaves the responses.
    fn place(&mut self, opinion: Opinion, swapped: bool) {
        match opinion {
            Opinion::Ratings { chosen, rejected } if swapped => {
                (self.chosen, self.rejected) = (Some(rejected), Some(chosen));
            }
            Opinion::Ratings { chosen, rejected } => {
                (self.chosen, self.rejected) = (Some(chosen), Some(rejected));
            }
            Opinion::Preference {
                probabilities: [chosen, tie, rejected],
                reason,
            } => {
                let probabilities = if swapped {
                    [rejected, tie, chosen]
                } else {
                    [chosen, tie, rejected]
                };
                self.preference = Some((probabilities, reason));
            }
        }
    }

    /// The verdict with its ratings, preference and margin back in the stored order (for a
    /// labelled set, whose rows are never swapped): the margin then favours the stored chosen
    /// response, negative when the judge preferred the other.
    #[must_use]
    pub fn in_stored_order(mut self) -> Self {
        if self.outcome == Outcome::Swapped {
            std::mem::swap(&mut self.chosen, &mut self.rejected);
            if let Some((probabilities, _)) = &mut self.preference {
                probabilities.swap(0, 2);
            }
            self.margin = self.margin.map(|m| -m);
        }
        self
    }

    /// Whether every judged order picked the same outcome; `None` with a single order.
    pub fn position_consistent(&self) -> Option<bool> {
        (self.orders.len() > 1).then(|| {
            self.orders
                .windows(2)
                .all(|pair| pair[0].outcome == pair[1].outcome)
        })
    }
}

/// The weighted mean of the judges' decision values, and how far apart they lie.
fn weighted_decision(assessments: &[Assessment]) -> (f64, f64) {
    let total: f64 = assessments
        .iter()
        .map(|a| a.weight)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let decision = assessments
        .iter()
        .map(|a| a.weight * a.decision)
        .sum::<f64>()
        / total;
    let decisions = || assessments.iter().map(|a| a.decision);
    let spread =
        decisions().fold(f64::NEG_INFINITY, f64::max) - decisions().fold(f64::INFINITY, f64::min);
    (decision, spread)
}

/// One judge's view of a row: its opinions of every order merged, and how each order came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The merged opinion.
    pub opinion: Opinion,
    /// Its decision value; 0 (a tie) for a judge whose orders disagree under
    /// [`Inconsistent::Tie`].
    pub decision: f64,
    /// The judge's own outcome.
    pub outcome: Outcome,
    /// Each order.
    pub orders: Vec<OrderResult>,
    /// The judge.
    pub judge: Arc<str>,
    /// Its weight in a panel.
    pub weight: f64,
}

impl Assessment {
    /// Merges one judge's opinions of the orders of a row (`true`: the stored chosen response
    /// was shown first).
    pub fn of(
        opinions: Vec<(bool, Opinion)>,
        policy: &DecisionPolicy,
        judge: Arc<str>,
        weight: f64,
    ) -> Self {
        let orders: Vec<OrderResult> = opinions
            .iter()
            .map(|(chosen_first, opinion)| OrderResult {
                chosen_first: *chosen_first,
                outcome: policy.decide(opinion.decision()),
            })
            .collect();
        let opinion = merge(
            opinions
                .into_iter()
                .map(|(_, opinion)| (opinion, 1.0))
                .collect(),
        );
        let inconsistent = orders
            .windows(2)
            .any(|pair| pair[0].outcome != pair[1].outcome);
        let decision = if inconsistent && policy.on_inconsistent == Inconsistent::Tie {
            0.0
        } else {
            opinion.decision()
        };
        Assessment {
            opinion,
            decision,
            outcome: policy.decide(decision),
            orders,
            judge,
            weight,
        }
    }
}

/// Merges weighted opinions into one: score distributions (or scores) and preference
/// probabilities are averaged, reasons kept side by side. Averaging before deciding keeps the
/// strength of each opinion, where a vote on hard labels would make every disagreement a tie.
fn merge(opinions: Vec<(Opinion, f64)>) -> Opinion {
    let total: f64 = opinions
        .iter()
        .map(|(_, w)| w)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    if opinions.len() == 1 {
        return opinions
            .into_iter()
            .next()
            .map(|(opinion, _)| opinion)
            .expect("one opinion; this is a bug");
    }
    let mut ratings: Vec<(Rating, Rating, f64)> = Vec::new();
    let mut preferences: Vec<([f64; 3], String, f64)> = Vec::new();
    for (opinion, weight) in opinions {
        match opinion {
            Opinion::Ratings { chosen, rejected } => ratings.push((chosen, rejected, weight)),
            Opinion::Preference {
                probabilities,
                reason,
            } => {
                preferences.push((probabilities, reason, weight));
            }
        }
    }
    if !ratings.is_empty() {
        let (chosen, rejected): (Vec<Weighted>, Vec<Weighted>) = ratings
            .into_iter()
            .map(|(chosen, rejected, weight)| ((chosen, weight), (rejected, weight)))
            .unzip();
        return Opinion::Ratings {
            chosen: mean_rating(&chosen, total),
            rejected: mean_rating(&rejected, total),
        };
    }
    let mut sum = [0.0; 3];
    for (probabilities, _, weight) in &preferences {
        for (slot, p) in sum.iter_mut().zip(probabilities) {
            *slot += p * weight / total;
        }
    }
    Opinion::Preference {
        probabilities: sum,
        reason: joined(preferences.iter().map(|(_, reason, _)| reason.as_str())),
    }
}

/// A rating and its judge's weight.
type Weighted = (Rating, f64);

fn mean_rating(ratings: &[Weighted], total: f64) -> Rating {
    let distributions: Option<Vec<([f64; 5], f64)>> = ratings
        .iter()
        .map(|(r, w)| r.distribution.map(|d| (d, *w)))
        .collect();
    let distribution = distributions.map(|all| {
        let mut sum = [0.0; 5];
        for (one, weight) in &all {
            for (slot, p) in sum.iter_mut().zip(one) {
                *slot += p * weight / total;
            }
        }
        sum
    });
    Rating {
        // The mean of the expected scores is the expected score of the mean distribution.
        score: ratings.iter().map(|(r, w)| r.score * w).sum::<f64>() / total,
        rationale: joined(ratings.iter().map(|(r, _)| r.rationale.as_str())),
        distribution,
    }
}

fn joined<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    texts
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// What to do when the orders of a pair disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Inconsistent {
    /// Decide on the merged distributions.
    #[default]
    Merge,
    /// Call it a tie (FastChat's rule for judging both orders).
    Tie,
}

/// The settings that turn a decision value into an outcome. Changing them needs no new judge
/// calls.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DecisionPolicy {
    /// Decision values up to this size count as a tie (0: only equal scores tie). A score
    /// difference under the rating protocol, a probability difference under the pairwise one.
    pub tie_margin: f64,
    /// What orders that disagree give.
    #[serde(default)]
    pub on_inconsistent: Inconsistent,
}

impl DecisionPolicy {
    /// The outcome of a decision value in favour of the stored chosen response.
    pub fn decide(&self, decision: f64) -> Outcome {
        // A small tolerance keeps values that differ by rounding noise from counting as a
        // preference.
        let margin = self.tie_margin.max(0.0) + 1e-9;
        if decision > margin {
            Outcome::Kept
        } else if -decision > margin {
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

    fn rating(score: f64) -> Rating {
        Rating {
            score,
            rationale: format!("{score}"),
            distribution: None,
        }
    }

    fn ratings(chosen: f64, rejected: f64) -> Opinion {
        Opinion::Ratings {
            chosen: rating(chosen),
            rejected: rating(rejected),
        }
    }

    fn preference(chosen: f64, tie: f64, rejected: f64) -> Opinion {
        Opinion::Preference {
            probabilities: [chosen, tie, rejected],
            reason: String::new(),
        }
    }

    #[test]
    fn decisions() {
        let strict = DecisionPolicy::default();
        assert_eq!(strict.decide(2.0), Outcome::Kept);
        assert_eq!(strict.decide(-2.0), Outcome::Swapped);
        assert_eq!(strict.decide(0.0), Outcome::Tie);
        let lenient = DecisionPolicy {
            tie_margin: 1.0,
            ..DecisionPolicy::default()
        };
        assert_eq!(lenient.decide(1.0), Outcome::Tie);
        assert_eq!(lenient.decide(-1.5), Outcome::Swapped);
    }

    #[test]
    fn a_swap_moves_the_ratings_and_the_margin_favours_the_new_chosen() {
        let verdict = Verdict::decide(
            vec![(true, ratings(2.0, 4.0))],
            &DecisionPolicy::default(),
            "judge".into(),
        );
        assert_eq!(verdict.outcome, Outcome::Swapped);
        assert_eq!(verdict.chosen.unwrap().score, 4.0);
        assert_eq!(verdict.margin, Some(2.0));
        assert_eq!(verdict.shown_first, Some(ShownFirst::Chosen));
        assert_eq!(verdict.orders[0].first_won(), Some(false));
    }

    #[test]
    fn both_orders_merge_before_deciding() {
        // A judge that likes position A: +0.6 for chosen when it is A, -0.2 when it is B.
        let opinions = vec![
            (true, preference(0.7, 0.2, 0.1)),
            (false, preference(0.3, 0.2, 0.5)),
        ];
        let merged = Verdict::decide(opinions.clone(), &DecisionPolicy::default(), "j".into());
        assert_eq!(
            merged.outcome,
            Outcome::Kept,
            "0.5 vs 0.3 still favours chosen"
        );
        assert!((merged.margin.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(merged.position_consistent(), Some(false));
        let fastchat = DecisionPolicy {
            on_inconsistent: Inconsistent::Tie,
            ..DecisionPolicy::default()
        };
        let tie = Verdict::decide(opinions, &fastchat, "j".into());
        assert_eq!(tie.outcome, Outcome::Tie, "opposite winners make a tie");
    }

    #[test]
    fn written_pairwise_answers_are_certain_probabilities() {
        let judgment = Judgment::Preference(Preference {
            winner: Winner::A,
            probabilities: None,
            reason: "clearer".into(),
        });
        assert_eq!(judgment.clone().opinion(false).decision(), -1.0);
        assert_eq!(judgment.opinion(true).decision(), 1.0);
    }

    #[test]
    fn stored_judgments_of_either_protocol_read_back() {
        let ratings = r#"{"response_a": {"score": 4.0, "rationale": "a"}, "response_b": {"score": 2.0, "rationale": "b"}}"#;
        assert!(matches!(
            serde_json::from_str::<Judgment>(ratings).unwrap(),
            Judgment::Ratings { .. }
        ));
        let preference = Judgment::Preference(Preference {
            winner: Winner::Tie,
            probabilities: Some([0.2, 0.5, 0.3]),
            reason: String::new(),
        });
        let text = serde_json::to_string(&preference).unwrap();
        assert_eq!(serde_json::from_str::<Judgment>(&text).unwrap(), preference);
    }

    proptest! {
        #[test]
        fn swapping_the_sides_mirrors_the_decision(a in 1.0f64..5.0, b in 1.0f64..5.0, margin in 0.0f64..2.0) {
            let policy = DecisionPolicy { tie_margin: margin, ..DecisionPolicy::default() };
            let mirrored = match policy.decide(a - b) {
                Outcome::Kept => Outcome::Swapped,
                Outcome::Swapped => Outcome::Kept,
                other => other,
            };
            prop_assert_eq!(policy.decide(b - a), mirrored);
        }

        #[test]
        fn merged_decisions_are_the_mean_of_the_orders(c1 in 0.0f64..1.0, c2 in 0.0f64..1.0) {
            let opinions = vec![(true, preference(c1, 0.0, 1.0 - c1)), (false, preference(c2, 0.0, 1.0 - c2))];
            let verdict = Verdict::decide(opinions, &DecisionPolicy::default(), "j".into());
            let expected = f64::midpoint(2.0 * c1 - 1.0, 2.0 * c2 - 1.0);
            prop_assert!((verdict.margin.unwrap() - expected.abs()).abs() < 1e-9 || verdict.outcome == Outcome::Tie);
        }
    }
}
