//! One row through the pipeline: render, look up, judge (asking once more if the answer does not
//! parse), record, decide, and build the output record.

use super::{RunConfig, RunError};
use crate::dataset::{ColumnMap, Conversation, DatasetError, Pair};
use crate::journal::{Entry, EntryStatus, Journal, RequestKey};
use crate::judge::{Judge, JudgeReply, JudgeRequest, Usage};
use crate::prompt::{ChatMessage, Language, PromptBuilder};
use crate::report::Counters;
use crate::verdict::{Judgment, Outcome, Rating, expected_score, parse_judgment};
use arrow_schema::{DataType, Field};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Semaphore;

/// The columns rejudge adds to every row.
pub fn added_fields() -> Vec<Field> {
    let distribution = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
    vec![
        Field::new("chosen_score", DataType::Float64, true),
        Field::new("rejected_score", DataType::Float64, true),
        Field::new("chosen_rationale", DataType::Utf8, true),
        Field::new("rejected_rationale", DataType::Utf8, true),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("failure_reason", DataType::Utf8, true),
        Field::new("judge_model", DataType::Utf8, true),
        Field::new("shown_first", DataType::Utf8, true),
        Field::new("chosen_score_distribution", distribution.clone(), true),
        Field::new("rejected_score_distribution", distribution, true),
    ]
}

/// What the judge made of a row, before the decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    /// The row cannot be judged.
    Invalid(String),
    /// The judge could not score it.
    Failed(String),
    /// Ratings of the stored chosen and rejected responses.
    Scored {
        /// The stored chosen response's rating.
        chosen: Rating,
        /// The stored rejected response's rating.
        rejected: Rating,
    },
}

/// A finished row: the output record, its outcome, the tokens it used and whether its answer
/// came from the journal.
pub(super) type Finished = (Map<String, Value>, Outcome, Usage, bool);

pub(super) struct Context<'a, J> {
    pub judge: &'a J,
    pub journal: &'a Journal,
    pub prompt: &'a PromptBuilder,
    pub fingerprint: Value,
    pub run: RequestKey,
    pub config: &'a RunConfig,
    pub columns: &'a ColumnMap,
    pub permits: Semaphore,
    pub counters: Counters,
}

/// One answer: the judgment, the tokens, whether it came from the journal.
struct Answer {
    judgment: Judgment,
    usage: Usage,
    from_journal: bool,
}

impl<J: Judge> Context<'_, J> {
    pub async fn judge_pair(&self, pair: Result<Pair, DatasetError>) -> Result<Finished, RunError> {
        let Pair {
            index,
            record,
            conversation,
        } = pair?;
        let orders = self.config.order.orders(index, self.config.seed);
        let (judged, usage, from_journal) = match conversation {
            Err(reason) => (Judged::Invalid(reason), Usage::default(), false),
            Ok(conversation) => self.judge_orders(index, &conversation, orders).await?,
        };
        let (record, outcome) = self.output(record, judged, orders);
        Ok((record, outcome, usage, from_journal))
    }

    /// Judges the pair in each of `orders` (one or both) and averages the ratings; the row fails
    /// if any order fails.
    async fn judge_orders(
        &self,
        index: u64,
        conversation: &Conversation,
        orders: &[bool],
    ) -> Result<(Judged, Usage, bool), RunError> {
        let attempts = orders
            .iter()
            .map(|&chosen_first| self.judge_order(index, conversation, chosen_first));
        let mut usage = Usage::default();
        let mut from_journal = true;
        let mut ratings = Vec::with_capacity(orders.len());
        let mut failure = None;
        for result in futures_util::future::join_all(attempts).await {
            let (judged, used, journal) = result?;
            usage.prompt_tokens += used.prompt_tokens;
            usage.completion_tokens += used.completion_tokens;
            from_journal &= journal;
            match judged {
                Judged::Scored { chosen, rejected } => ratings.push((chosen, rejected)),
                other => {
                    failure.get_or_insert(other);
                }
            }
        }
        match failure {
            Some(judged) => Ok((judged, usage, false)),
            None => Ok((average(ratings), usage, from_journal)),
        }
    }

    /// Judges the pair with the stored chosen response shown first or second.
    async fn judge_order(
        &self,
        index: u64,
        conversation: &Conversation,
        chosen_first: bool,
    ) -> Result<(Judged, Usage, bool), RunError> {
        let messages = match self.prompt.render(conversation, chosen_first) {
            Ok(messages) => messages,
            Err(reason) => return Ok((Judged::Failed(reason), Usage::default(), false)),
        };
        Ok(match self.answer(index, messages).await? {
            Ok(answer) => {
                let Judgment {
                    response_a,
                    response_b,
                } = answer.judgment;
                let (chosen, rejected) = if chosen_first {
                    (response_a, response_b)
                } else {
                    (response_b, response_a)
                };
                (
                    Judged::Scored { chosen, rejected },
                    answer.usage,
                    answer.from_journal,
                )
            }
            Err((reason, usage)) => (Judged::Failed(reason), usage, false),
        })
    }

    /// Gets a judgment from the journal or the judge; asks once more when an answer does not
    /// parse. Journal errors stop the run; judge failures are the row's.
    async fn answer(
        &self,
        index: u64,
        messages: Vec<ChatMessage>,
    ) -> Result<Result<Answer, (String, Usage)>, RunError> {
        let mut messages = messages;
        let mut usage = Usage::default();
        for round in 0..2 {
            let key = RequestKey::new(&self.fingerprint, self.prompt.template_hash(), &messages);
            if let Some(stored) = self.journal.lookup(key).await? {
                self.counters.from_journal.fetch_add(1, Ordering::Relaxed);
                let usage = Usage {
                    prompt_tokens: stored.prompt_tokens,
                    completion_tokens: stored.completion_tokens,
                };
                return Ok(Ok(Answer {
                    judgment: stored.judgment,
                    usage,
                    from_journal: true,
                }));
            }
            let reply = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed; this is a bug");
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                self.judge
                    .judge(&JudgeRequest {
                        messages: messages.clone(),
                    })
                    .await
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => {
                    self.counters.retried.fetch_add(
                        u64::from(error.attempts.saturating_sub(1)),
                        Ordering::Relaxed,
                    );
                    let entry = self.entry(
                        key,
                        index,
                        EntryStatus::Failed,
                        None,
                        None,
                        Some(error.to_string()),
                    );
                    self.journal.record(entry).await?;
                    return Ok(Err((error.to_string(), usage)));
                }
            };
            self.counters.retried.fetch_add(
                u64::from(reply.attempts.saturating_sub(1)),
                Ordering::Relaxed,
            );
            usage.prompt_tokens += reply.usage.prompt_tokens;
            usage.completion_tokens += reply.usage.completion_tokens;
            match parse_judgment(&reply.text) {
                Ok(judgment) => {
                    let judgment = with_distributions(judgment, &reply);
                    let entry = self.entry(
                        key,
                        index,
                        EntryStatus::Ok,
                        Some(&reply),
                        Some(judgment.clone()),
                        None,
                    );
                    self.journal.record(entry).await?;
                    return Ok(Ok(Answer {
                        judgment,
                        usage,
                        from_journal: false,
                    }));
                }
                Err(error) => {
                    let entry = self.entry(
                        key,
                        index,
                        EntryStatus::Unparseable,
                        Some(&reply),
                        None,
                        Some(error.clone()),
                    );
                    self.journal.record(entry).await?;
                    if round == 1 {
                        return Ok(Err((format!("unparseable judge answer: {error}"), usage)));
                    }
                    self.counters.parse_retries.fetch_add(1, Ordering::Relaxed);
                    messages.push(ChatMessage {
                        role: "assistant".into(),
                        content: reply.text,
                    });
                    messages.push(ChatMessage {
                        role: "user".into(),
                        content: reminder(self.prompt.language(), &error),
                    });
                }
            }
        }
        unreachable!("the loop returns in its second round")
    }

    fn entry(
        &self,
        key: RequestKey,
        row_index: u64,
        status: EntryStatus,
        reply: Option<&JudgeReply>,
        judgment: Option<Judgment>,
        error: Option<String>,
    ) -> Entry {
        Entry {
            key,
            run: self.run,
            row_index,
            status,
            response: reply.map(|r| r.text.clone()),
            judgment,
            prompt_tokens: reply.map_or(0, |r| r.usage.prompt_tokens),
            completion_tokens: reply.map_or(0, |r| r.usage.completion_tokens),
            latency_ms: reply.map_or(0, |r| r.latency.as_millis() as u64),
            attempts: reply.map_or(0, |r| r.attempts),
            error,
        }
    }

    /// The output record: input columns untouched except `chosen`/`rejected`, which are swapped
    /// when the judge prefers the rejected response, plus the added columns.
    fn output(
        &self,
        mut record: Map<String, Value>,
        judged: Judged,
        orders: &[bool],
    ) -> (Map<String, Value>, Outcome) {
        let model = json!(self.judge.model());
        let (outcome, chosen, rejected, reason) = match judged {
            Judged::Invalid(reason) => (Outcome::Invalid, None, None, Some(reason)),
            Judged::Failed(reason) => (Outcome::Failed, None, None, Some(reason)),
            Judged::Scored { chosen, rejected } => {
                let outcome = self.config.policy.decide(chosen.score, rejected.score);
                if outcome == Outcome::Swapped {
                    swap_cells(&mut record, &self.columns.chosen, &self.columns.rejected);
                    (outcome, Some(rejected), Some(chosen), None)
                } else {
                    (outcome, Some(chosen), Some(rejected), None)
                }
            }
        };
        let shown_first = match (outcome, orders) {
            (Outcome::Invalid, _) => Value::Null,
            (_, [true]) => json!("chosen"),
            (_, [false]) => json!("rejected"),
            _ => json!("both"),
        };
        let score =
            |rating: &Option<Rating>| rating.as_ref().map_or(Value::Null, |r| json!(r.score));
        let rationale =
            |rating: &Option<Rating>| rating.as_ref().map_or(Value::Null, |r| json!(r.rationale));
        let distribution = |rating: &Option<Rating>| {
            rating
                .as_ref()
                .and_then(|r| r.distribution)
                .map_or(Value::Null, |d| json!(d))
        };
        record.insert("chosen_score".into(), score(&chosen));
        record.insert("rejected_score".into(), score(&rejected));
        record.insert("chosen_rationale".into(), rationale(&chosen));
        record.insert("rejected_rationale".into(), rationale(&rejected));
        record.insert("outcome".into(), json!(outcome.as_str()));
        record.insert(
            "failure_reason".into(),
            reason.map_or(Value::Null, Value::String),
        );
        record.insert("judge_model".into(), model);
        record.insert("shown_first".into(), shown_first);
        record.insert("chosen_score_distribution".into(), distribution(&chosen));
        record.insert(
            "rejected_score_distribution".into(),
            distribution(&rejected),
        );
        (record, outcome)
    }
}

/// The mean of the ratings from several orders; the rationales are kept side by side.
fn average(ratings: Vec<(Rating, Rating)>) -> Judged {
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
    Judged::Scored {
        chosen: mean(|r| &r.0),
        rejected: mean(|r| &r.1),
    }
}

fn swap_cells(record: &mut Map<String, Value>, chosen: &str, rejected: &str) {
    let chosen_value = record.remove(chosen).unwrap_or(Value::Null);
    let rejected_value = record
        .insert(rejected.to_owned(), chosen_value)
        .unwrap_or(Value::Null);
    record.insert(chosen.to_owned(), rejected_value);
}

/// Under log-probability scoring, replaces each written score with the expected score.
fn with_distributions(mut judgment: Judgment, reply: &JudgeReply) -> Judgment {
    if let Some([a, b]) = reply.distributions {
        judgment.response_a.score = expected_score(&a);
        judgment.response_a.distribution = Some(a);
        judgment.response_b.score = expected_score(&b);
        judgment.response_b.distribution = Some(b);
    }
    judgment
}

fn reminder(language: Language, error: &str) -> String {
    match language {
        Language::En => format!(
            "Your answer could not be read ({error}). Reply again with only the JSON object: {{\"response_a\": {{\"rationale\": \"...\", \"score\": 1-5}}, \"response_b\": {{\"rationale\": \"...\", \"score\": 1-5}}}}"
        ),
        Language::It => format!(
            "Non è stato possibile leggere la tua risposta ({error}). Rispondi di nuovo solo con l'oggetto JSON: {{\"response_a\": {{\"rationale\": \"...\", \"score\": 1-5}}, \"response_b\": {{\"rationale\": \"...\", \"score\": 1-5}}}}"
        ),
    }
}
