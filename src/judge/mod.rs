//! Judges: the [`Judge`] trait (one attempt), the OpenAI-compatible HTTP backend, the in-process
//! llama.cpp backend, and the one retry layer around any of them ([`Retrying`]).
//!
//! A new backend is one file implementing [`Judge`] plus its variant in [`AnyJudge`].

pub mod batch;
#[cfg(feature = "cpu-variants")]
pub mod cpu_variants;
pub mod error;
pub mod limit;
#[cfg(feature = "local")]
pub mod local;
pub mod openai;
pub mod pool;
mod retry;

pub use error::{Class, JudgeError, classify};
pub use limit::{Pace, Pacing, Signal, Throttle};
pub use openai::{OpenAiConfig, OpenAiJudge};
pub use pool::{Endpoint, EndpointFigures, PoolJudge};
pub use retry::{Failure, RetryPolicy, Retrying, parse_retry_after};

use crate::prompt::{ChatMessage, Mode};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// How a score is read from the judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scoring {
    /// The score the judge writes.
    #[default]
    Score,
    /// The expected score under the judge's next-token distribution at each score position.
    Logprobs,
}

/// Sampling settings sent with every request; part of the request key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sampling {
    /// Sampling temperature (0: greedy).
    pub temperature: f64,
    /// Most tokens the judge may write.
    pub max_tokens: u32,
    /// Sampling seed, for servers that honour one.
    pub seed: Option<u64>,
    /// How scores are read.
    pub scoring: Scoring,
    /// What the judge is asked for. Left out of the key under the rating protocol, so journals
    /// written before the pairwise protocol existed keep their keys.
    #[serde(skip_serializing_if = "Mode::is_rating")]
    pub mode: Mode,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            max_tokens: 512,
            seed: Some(0),
            scoring: Scoring::Score,
            mode: Mode::Rating,
        }
    }
}

/// Probabilities read from the judge's log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probabilities {
    /// Score distributions over 1..5 at the two score positions (A, then B).
    Scores([[f64; 5]; 2]),
    /// Probabilities of A, tie and B at the verdict token.
    Preference([f64; 3]),
}

/// One judgment request: the rendered messages.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeRequest {
    /// The messages to send.
    pub messages: Vec<ChatMessage>,
}

/// Tokens used by one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// A judge's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text the judge wrote.
    pub text: String,
    /// Token usage, as the judge reported it.
    pub usage: Usage,
    /// What the log-probabilities said, under log-probability scoring.
    pub probabilities: Option<Probabilities>,
    /// Whether the answer was generated under the judgment schema (a `response_format` the
    /// server accepted, or a grammar), so that it must be exactly one object of that schema.
    pub structured: bool,
    /// How long the server asked to hold off further requests (its rate-limit headers say
    /// nothing is left until then).
    pub pause: Option<Duration>,
    /// Attempts made, 1 when the first succeeded (set by [`Retrying`]).
    pub attempts: u32,
    /// Wall time from the first attempt to the answer (set by [`Retrying`]).
    pub latency: Duration,
}

/// A judge of response pairs. Backends differ in transport; the pipeline sees only this.
pub trait Judge: Send + Sync {
    /// The model's name, as written to the `judge_model` column.
    fn model(&self) -> &str;

    /// Everything besides the messages that determines the answer (model, sampling); it goes
    /// into each request's journal key. Never includes an address or a key.
    fn fingerprint(&self) -> serde_json::Value;

    /// Makes one attempt at `request`: no retries (those belong to [`Retrying`]).
    fn attempt(
        &self,
        request: &JudgeRequest,
    ) -> impl Future<Output = Result<Reply, JudgeError>> + Send;

    /// What each endpoint did, for a judge that spreads requests over several.
    fn endpoints(&self) -> Vec<EndpointFigures> {
        Vec::new()
    }
}

impl<J: Judge + ?Sized> Judge for &J {
    fn model(&self) -> &str {
        (**self).model()
    }

    fn fingerprint(&self) -> serde_json::Value {
        (**self).fingerprint()
    }

    fn attempt(
        &self,
        request: &JudgeRequest,
    ) -> impl Future<Output = Result<Reply, JudgeError>> + Send {
        (**self).attempt(request)
    }

    fn endpoints(&self) -> Vec<EndpointFigures> {
        (**self).endpoints()
    }
}

/// Any of the built-in judges, so that a command can pick one at run time.
pub enum AnyJudge {
    /// An OpenAI-compatible server.
    OpenAi(OpenAiJudge),
    /// Several OpenAI-compatible endpoints serving one model.
    Pool(PoolJudge),
    /// Answers from batches only: what the journal does not hold waits for the next batch.
    Deferring(batch::Deferring),
    /// llama.cpp in-process.
    #[cfg(feature = "local")]
    Local(local::LocalJudge),
}

impl Judge for AnyJudge {
    fn model(&self) -> &str {
        match self {
            AnyJudge::OpenAi(judge) => judge.model(),
            AnyJudge::Pool(judge) => judge.model(),
            AnyJudge::Deferring(judge) => judge.model(),
            #[cfg(feature = "local")]
            AnyJudge::Local(judge) => judge.model(),
        }
    }

    fn fingerprint(&self) -> serde_json::Value {
        match self {
            AnyJudge::OpenAi(judge) => judge.fingerprint(),
            AnyJudge::Pool(judge) => judge.fingerprint(),
            AnyJudge::Deferring(judge) => judge.fingerprint(),
            #[cfg(feature = "local")]
            AnyJudge::Local(judge) => judge.fingerprint(),
        }
    }

    async fn attempt(&self, request: &JudgeRequest) -> Result<Reply, JudgeError> {
        match self {
            AnyJudge::OpenAi(judge) => judge.attempt(request).await,
            AnyJudge::Pool(judge) => judge.attempt(request).await,
            AnyJudge::Deferring(judge) => judge.attempt(request).await,
            #[cfg(feature = "local")]
            AnyJudge::Local(judge) => judge.attempt(request).await,
        }
    }

    fn endpoints(&self) -> Vec<EndpointFigures> {
        match self {
            AnyJudge::Pool(judge) => judge.figures(),
            AnyJudge::OpenAi(_) | AnyJudge::Deferring(_) => Vec::new(),
            #[cfg(feature = "local")]
            AnyJudge::Local(_) => Vec::new(),
        }
    }
}

/// Score distributions at the score positions of a generated judgment: the candidates seen where
/// the text so far ends with `"score":`, labelled by the last `response_a`/`response_b` key before
/// them. `steps` yields each generated token's text with its candidate tokens and log-probabilities.
pub fn score_distributions<I, C, S>(steps: I) -> Option<[[f64; 5]; 2]>
where
    I: IntoIterator<Item = (S, C)>,
    C: IntoIterator<Item = (S, f64)>,
    S: AsRef<str>,
{
    let mut text = String::new();
    let mut found: [Option<[f64; 5]>; 2] = [None, None];
    for (token, candidates) in steps {
        let before = text.trim_end();
        if before.ends_with("\"score\":")
            && token
                .as_ref()
                .trim()
                .starts_with(|c: char| c.is_ascii_digit())
        {
            let slot = match (
                before.rfind("\"response_a\""),
                before.rfind("\"response_b\""),
            ) {
                (Some(a), Some(b)) => usize::from(b > a),
                (None, Some(_)) => 1,
                _ => 0,
            };
            let candidates: Vec<(S, f64)> = candidates.into_iter().collect();
            found[slot] = crate::verdict::distribution_from_logprobs(
                candidates
                    .iter()
                    .map(|(token, logprob)| (token.as_ref(), *logprob)),
            );
        }
        text.push_str(token.as_ref());
    }
    match found {
        [Some(a), Some(b)] => Some([a, b]),
        _ => None,
    }
}

/// What the log-probabilities of a generated answer say under `mode`: the score distributions
/// of a rating, or the probabilities of A, tie and B at the verdict token of a pairwise answer.
pub fn read_probabilities<I, C, S>(mode: Mode, steps: I) -> Option<Probabilities>
where
    I: IntoIterator<Item = (S, C)>,
    C: IntoIterator<Item = (S, f64)>,
    S: AsRef<str>,
{
    match mode {
        Mode::Rating => score_distributions(steps).map(Probabilities::Scores),
        Mode::Pairwise => preference_probabilities(steps).map(Probabilities::Preference),
    }
}

/// Which verdict a token spells: `Some(0)` for A, `Some(1)` for tie (or a start of "tie"),
/// `Some(2)` for B.
pub fn verdict_token(token: &str) -> Option<usize> {
    match token.trim().to_ascii_lowercase().as_str() {
        "a" => Some(0),
        "t" | "ti" | "tie" => Some(1),
        "b" => Some(2),
        _ => None,
    }
}

/// The probabilities of A, tie and B at the step where the verdict was written (the first
/// token that spells one), renormalised over the candidates that spell a verdict. When no
/// generated token spells one (a weak judge that opens with markup, `--max-tokens 1`), the
/// first step is read: the protocol puts the verdict there, so its candidates are the judge's
/// preference, as far as the listed candidates include a verdict.
fn preference_probabilities<I, C, S>(steps: I) -> Option<[f64; 3]>
where
    I: IntoIterator<Item = (S, C)>,
    C: IntoIterator<Item = (S, f64)>,
    S: AsRef<str>,
{
    let mut steps = steps.into_iter();
    let first = steps.next()?;
    let verdict_step = if verdict_token(first.0.as_ref()).is_some() {
        first
    } else {
        match steps.find(|(token, _)| verdict_token(token.as_ref()).is_some()) {
            Some(step) => step,
            None => first,
        }
    };
    let mut mass = [0.0f64; 3];
    for (token, logprob) in verdict_step.1 {
        if let Some(slot) = verdict_token(token.as_ref()) {
            mass[slot] += logprob.exp();
        }
    }
    let total: f64 = mass.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| mass.map(|m| m / total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_is_read_where_the_verdict_is_written() {
        let steps = vec![
            ("**", vec![("**", -0.1), ("A", -3.0)]),
            (
                "B",
                vec![("B", -0.2), (" A", -1.9), ("tie", -3.0), ("The", -4.0)],
            ),
            ("\n", vec![]),
        ];
        let [a, tie, b] = read_probabilities(Mode::Pairwise, steps)
            .map(|p| match p {
                Probabilities::Preference(p) => p,
                Probabilities::Scores(_) => panic!("a preference"),
            })
            .expect("a verdict step");
        assert!(b > a && a > tie, "{a} {tie} {b}");
        assert!((a + tie + b - 1.0).abs() < 1e-9);
        let none: Vec<(&str, Vec<(&str, f64)>)> = vec![("Hello", vec![("Hello", -0.1)])];
        assert!(read_probabilities(Mode::Pairwise, none).is_none());
        // No verdict written: the first step's candidates decide.
        let markup = vec![("<", vec![("<", -0.1), ("B", -2.0), ("A", -3.0)])];
        let Some(Probabilities::Preference([a, tie, b])) =
            read_probabilities(Mode::Pairwise, markup)
        else {
            panic!("read from the first step");
        };
        assert!(b > a && tie == 0.0, "{a} {tie} {b}");
        assert!((b - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-9, "{b}");
    }

    #[test]
    fn distributions_are_found_at_both_score_positions() {
        let steps = vec![
            (
                "{\"response_a\": {\"rationale\": \"ok\", \"score\":",
                vec![],
            ),
            (" 4", vec![(" 4", -0.2), (" 3", -1.8)]),
            (
                "}, \"response_b\": {\"rationale\": \"no\", \"score\": ",
                vec![],
            ),
            ("2", vec![("2", -0.1), ("1", -2.4), ("x", -5.0)]),
            ("}}", vec![]),
        ];
        let [a, b] = score_distributions(steps).expect("two positions");
        assert!(a[3] > a[2] && a[0] == 0.0);
        assert!(b[1] > b[0] && b[4] == 0.0);
    }

    #[test]
    fn no_distribution_without_both_positions() {
        let steps = vec![
            ("{\"response_a\": {\"score\": ", vec![]),
            ("4", vec![("4", -0.1)]),
        ];
        assert!(score_distributions(steps).is_none());
    }
}
