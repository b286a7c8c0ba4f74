//! One row through the judge: render each order, take the answer from the journal or ask the
//! judge (once more with a reminder when an answer does not parse), record it, and decide.
//!
//! Three guards sit in front of the judge: the first request of a run goes alone and a setup
//! failure (wrong key, wrong address, nothing listening) stops the run before it fans out; many
//! requests in a row failing that way stop it later; and identical requests in flight at the
//! same time are sent once.

use super::{Counters, Row, RunConfig, RunError, Stop};
use crate::dataset::Conversation;
use crate::journal::{Entry, EntryStatus, Journal, RequestKey, Stored};
use crate::judge::{Class, Failure, Judge, JudgeRequest, Reply, Retrying, Usage, error};
use crate::prompt::{ChatMessage, Language, PromptBuilder};
use crate::verdict::{
    AnswerFormat, Judgment, Rating, ShownFirst, Verdict, expected_score, merge_orders,
    parse_judgment,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, Semaphore};

/// Requests in a row that may fail with a setup error before the run stops.
const BREAKER: u32 = 8;
/// The most characters of an unreadable answer quoted back to the judge.
const QUOTED_ANSWER: usize = 2_000;
/// The most bytes of a raw answer kept in the journal.
const STORED_ANSWER: usize = 256 << 10;

/// What one row cost: tokens, and whether every answer came from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Tokens of every request made for the row (answers reused from the journal or from an
    /// identical request count their original tokens).
    pub usage: Usage,
    /// Whether no request was sent for the row.
    pub from_journal: bool,
}

impl Cost {
    const NOTHING: Cost = Cost {
        usage: Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
        },
        from_journal: true,
    };

    fn add(self, other: Cost) -> Cost {
        Cost {
            usage: Usage {
                prompt_tokens: self
                    .usage
                    .prompt_tokens
                    .saturating_add(other.usage.prompt_tokens),
                completion_tokens: self
                    .usage
                    .completion_tokens
                    .saturating_add(other.usage.completion_tokens),
            },
            from_journal: self.from_journal && other.from_journal,
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone)]
pub(super) enum Asked {
    Judged(Judgment),
    Unparseable { text: String, error: String },
    Failed(String),
}

/// The first request's lock and the count of setup failures in a row.
#[derive(Default)]
pub(super) struct Gate {
    open: AtomicBool,
    first: tokio::sync::Mutex<()>,
    failing: AtomicU32,
}

type Shared = Arc<OnceCell<(Asked, Cost)>>;

/// Everything a row needs to be judged, shared by the rows of a run.
pub(super) struct Asker<'a, J> {
    pub judge: Retrying<&'a J>,
    pub journal: &'a Journal,
    pub prompt: &'a PromptBuilder,
    pub config: &'a RunConfig,
    pub fingerprint: serde_json::Value,
    pub run: RequestKey,
    pub model: Arc<str>,
    pub permits: Semaphore,
    pub counters: Counters,
    pub gate: Gate,
    pub in_flight: Mutex<HashMap<RequestKey, Shared>>,
    pub stop: &'a Stop,
}

impl<J: Judge> Asker<'_, J> {
    /// The row's verdict and what it cost. Journal errors, setup failures and a stop end the
    /// run; everything else is the row's.
    pub async fn judge_row(&self, row: Row) -> Result<(Row, Verdict, Cost), RunError> {
        let (verdict, cost) = match &row.conversation {
            Err(reason) => (
                Verdict::invalid(reason.clone(), self.model.clone()),
                Cost::NOTHING,
            ),
            Ok(conversation) if conversation.chosen == conversation.rejected => {
                (Verdict::identical(self.model.clone()), Cost::NOTHING)
            }
            Ok(conversation) => self.verdict(row.index, conversation).await?,
        };
        Ok((row, verdict, cost))
    }

    async fn verdict(
        &self,
        index: u64,
        conversation: &Conversation,
    ) -> Result<(Verdict, Cost), RunError> {
        let orders = self.config.order.orders(index, self.config.seed);
        let shown_first = ShownFirst::of(orders);
        let judged = orders
            .iter()
            .map(|&chosen_first| self.judge_order(index, conversation, chosen_first));
        let mut cost = Cost::NOTHING;
        let mut ratings = Vec::with_capacity(orders.len());
        let mut failure = None;
        for result in futures_util::future::join_all(judged).await {
            let (outcome, spent) = result?;
            cost = cost.add(spent);
            match outcome {
                Ok(pair) => ratings.push(pair),
                Err(reason) => failure = failure.or(Some(reason)),
            }
        }
        let model = self.model.clone();
        let verdict = match failure {
            Some(reason) => Verdict::failed(reason, shown_first, model),
            None => {
                let (chosen, rejected) = merge_orders(&ratings);
                Verdict::decide(chosen, rejected, &self.config.policy, shown_first, model)
            }
        };
        Ok((verdict, cost))
    }

    /// The ratings of the stored chosen and rejected responses with the chosen one shown first
    /// or second.
    async fn judge_order(
        &self,
        index: u64,
        conversation: &Conversation,
        chosen_first: bool,
    ) -> Result<(Result<(Rating, Rating), String>, Cost), RunError> {
        let messages = match self.prompt.render(conversation, chosen_first) {
            Ok(messages) => messages,
            Err(reason) => return Ok((Err(reason), Cost::NOTHING)),
        };
        let (judgment, cost) = self.judgment(index, messages).await?;
        let ratings = judgment.map(
            |Judgment {
                 response_a,
                 response_b,
             }| {
                if chosen_first {
                    (response_a, response_b)
                } else {
                    (response_b, response_a)
                }
            },
        );
        Ok((ratings, cost))
    }

    /// A judgment for `messages`, asking once more with a reminder when the answer does not
    /// parse. A resumed run walks the same path through the journal without new requests.
    async fn judgment(
        &self,
        index: u64,
        messages: Vec<ChatMessage>,
    ) -> Result<(Result<Judgment, String>, Cost), RunError> {
        let (first, cost) = self.ask(index, &messages).await?;
        let (text, error) = match first {
            Asked::Judged(judgment) => return Ok((Ok(judgment), cost)),
            Asked::Failed(reason) => return Ok((Err(reason), cost)),
            Asked::Unparseable { text, error } => (text, error),
        };
        self.counters.parse_retries.fetch_add(1, Ordering::Relaxed);
        let reminder = reminder_messages(messages, &text, &error, self.prompt.language());
        let (second, more) = self.ask(index, &reminder).await?;
        let judgment = match second {
            Asked::Judged(judgment) => Ok(judgment),
            Asked::Failed(reason) => Err(reason),
            Asked::Unparseable { error, .. } => Err(format!("unparseable judge answer: {error}")),
        };
        Ok((judgment, cost.add(more)))
    }

    /// Whether every request `messages` needs is answered in the journal (no call is made).
    pub async fn settled(&self, messages: Vec<ChatMessage>) -> Result<bool, RunError> {
        let key = self.key(&messages);
        Ok(match self.journal.lookup(key).await? {
            Some(Stored::Judged(..)) => true,
            None => false,
            Some(Stored::Unparseable {
                response, error, ..
            }) => {
                let reminder =
                    reminder_messages(messages, &response, &error, self.prompt.language());
                matches!(
                    self.journal.lookup(self.key(&reminder)).await?,
                    Some(Stored::Judged(..) | Stored::Unparseable { .. })
                )
            }
        })
    }

    fn key(&self, messages: &[ChatMessage]) -> RequestKey {
        RequestKey::new(&self.fingerprint, self.prompt.template_hash(), messages)
    }

    /// One request: from the journal when answered before, from an identical request in flight,
    /// or from the judge.
    async fn ask(&self, index: u64, messages: &[ChatMessage]) -> Result<(Asked, Cost), RunError> {
        let key = self.key(messages);
        if let Some(found) = self.stored(key).await? {
            return Ok(found);
        }
        let shared = self
            .in_flight
            .lock()
            .expect("the in-flight map is never poisoned; this is a bug")
            .entry(key)
            .or_default()
            .clone();
        let here = AtomicBool::new(false);
        let (asked, cost) = shared
            .get_or_try_init(|| async {
                here.store(true, Ordering::Relaxed);
                self.send(key, index, messages).await
            })
            .await?
            .clone();
        if here.load(Ordering::Relaxed) {
            self.in_flight
                .lock()
                .expect("the in-flight map is never poisoned; this is a bug")
                .remove(&key);
            return Ok((asked, cost));
        }
        self.counters.deduplicated.fetch_add(1, Ordering::Relaxed);
        let cost = Cost {
            from_journal: true,
            ..cost
        };
        Ok((asked, cost))
    }

    /// The journal's answer to `key`, if it has one.
    async fn stored(&self, key: RequestKey) -> Result<Option<(Asked, Cost)>, RunError> {
        let found = match self.journal.lookup(key).await? {
            None => return Ok(None),
            Some(Stored::Judged(judgment, usage)) => (Asked::Judged(judgment), usage),
            Some(Stored::Unparseable {
                response,
                error,
                usage,
            }) => (
                Asked::Unparseable {
                    text: response,
                    error,
                },
                usage,
            ),
        };
        self.counters.from_journal.fetch_add(1, Ordering::Relaxed);
        Ok(Some((
            found.0,
            Cost {
                usage: found.1,
                from_journal: true,
            },
        )))
    }

    /// Sends one request (unless the journal got its answer meanwhile) and records the outcome.
    async fn send(
        &self,
        key: RequestKey,
        index: u64,
        messages: &[ChatMessage],
    ) -> Result<(Asked, Cost), RunError> {
        // Another row may have committed this answer after our first look.
        if let Some(found) = self.stored(key).await? {
            return Ok(found);
        }
        let reply = {
            let interrupted = || RunError::Interrupted { done: 0, total: 0 };
            if self.stop.requested() {
                return Err(interrupted());
            }
            let _permit = self
                .permits
                .acquire()
                .await
                .expect("never closed; this is a bug");
            if self.stop.requested() {
                return Err(interrupted());
            }
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.call(&JudgeRequest {
                messages: messages.to_vec(),
            })
            .await?
        };
        let (entry, asked, usage) = match reply {
            Ok(reply) => self.read(key, index, &reply),
            Err(failure) => {
                let reason = failure.to_string();
                let entry = self.entry(key, index, EntryStatus::Failed, None, Some(reason.clone()));
                (entry, Asked::Failed(reason), Usage::default())
            }
        };
        self.journal.record(entry).await?;
        Ok((
            asked,
            Cost {
                usage,
                from_journal: false,
            },
        ))
    }

    /// The judge's reply through the gate: the run's first request goes alone, and a setup
    /// failure then, or many in a row later, stops the run.
    async fn call(&self, request: &JudgeRequest) -> Result<Result<Reply, Failure>, RunError> {
        let result = if self.gate.open.load(Ordering::Acquire) {
            self.judge.ask(request).await
        } else {
            let first = self.gate.first.lock().await;
            if self.gate.open.load(Ordering::Acquire) {
                drop(first);
                self.judge.ask(request).await
            } else {
                let result = self.judge.ask_first(request).await;
                if let Err(failure) = &result
                    && is_setup(failure)
                {
                    return Err(RunError::Setup {
                        message: failure.to_string(),
                        hint: error::hint(&failure.error),
                    });
                }
                self.gate.open.store(true, Ordering::Release);
                result
            }
        };
        self.watch(&result)?;
        Ok(result)
    }

    fn watch(&self, result: &Result<Reply, Failure>) -> Result<(), RunError> {
        match result {
            Ok(_) => self.gate.failing.store(0, Ordering::Relaxed),
            Err(failure) if is_setup(failure) => {
                let count = self.gate.failing.fetch_add(1, Ordering::Relaxed) + 1;
                if count >= BREAKER {
                    return Err(RunError::Stopped {
                        count,
                        message: failure.to_string(),
                        hint: error::hint(&failure.error),
                    });
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// Parses a reply into the entry to record and the outcome of the request.
    fn read(&self, key: RequestKey, index: u64, reply: &Reply) -> (Entry, Asked, Usage) {
        let usage = reply.usage;
        let format = if reply.structured {
            AnswerFormat::Schema
        } else {
            AnswerFormat::Text
        };
        match parse_judgment(&reply.text, format) {
            Ok(judgment) => {
                let judgment = with_distributions(judgment, reply);
                let mut entry = self.entry(key, index, EntryStatus::Ok, Some(reply), None);
                entry.judgment = Some(judgment.clone());
                (entry, Asked::Judged(judgment), usage)
            }
            Err(error) => {
                let status = EntryStatus::Unparseable;
                let entry = self.entry(key, index, status, Some(reply), Some(error.clone()));
                let text = entry.response.clone().unwrap_or_default();
                (entry, Asked::Unparseable { text, error }, usage)
            }
        }
    }

    fn entry(
        &self,
        key: RequestKey,
        row_index: u64,
        status: EntryStatus,
        reply: Option<&Reply>,
        error: Option<String>,
    ) -> Entry {
        Entry {
            key,
            run: self.run,
            row_index,
            status,
            response: reply.map(|r| truncated(&r.text, STORED_ANSWER)),
            judgment: None,
            prompt_tokens: reply.map_or(0, |r| r.usage.prompt_tokens),
            completion_tokens: reply.map_or(0, |r| r.usage.completion_tokens),
            latency_ms: reply.map_or(0, |r| {
                u64::try_from(r.latency.as_millis()).unwrap_or(u64::MAX)
            }),
            attempts: reply.map_or(0, |r| r.attempts),
            error,
        }
    }
}

fn is_setup(failure: &Failure) -> bool {
    failure.class() == Class::Setup || failure.error.is_refused()
}

/// At most `limit` bytes of `text`, cut at a character boundary, marked when cut.
fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &text[..end], text.len() - end)
}

/// Under log-probability scoring, replaces each written score with the expected score.
fn with_distributions(mut judgment: Judgment, reply: &Reply) -> Judgment {
    if let Some([a, b]) = reply.distributions {
        judgment.response_a.score = expected_score(&a);
        judgment.response_a.distribution = Some(a);
        judgment.response_b.score = expected_score(&b);
        judgment.response_b.distribution = Some(b);
    }
    judgment
}

/// The conversation so far, the start of the unreadable answer (never all of it: an answer can
/// be huge, and it goes back to a paid endpoint), and a reminder of the expected shape.
fn reminder_messages(
    mut messages: Vec<ChatMessage>,
    answer: &str,
    error: &str,
    language: Language,
) -> Vec<ChatMessage> {
    let shape = r#"{"response_a": {"rationale": "...", "score": 1-5}, "response_b": {"rationale": "...", "score": 1-5}}"#;
    let reminder = match language {
        Language::En => format!(
            "Your answer could not be read ({error}). Reply again with only the JSON object: {shape}"
        ),
        Language::It => format!(
            "Non è stato possibile leggere la tua risposta ({error}). Rispondi di nuovo solo con l'oggetto JSON: {shape}"
        ),
    };
    let quoted: String = answer.chars().take(QUOTED_ANSWER).collect();
    messages.push(ChatMessage {
        role: "assistant".into(),
        content: quoted,
    });
    messages.push(ChatMessage {
        role: "user".into(),
        content: reminder,
    });
    messages
}
