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
use crate::judge::{
    Class, Failure, Judge, JudgeRequest, Probabilities, Reply, Retrying, Usage, error,
};
use crate::prompt::{ChatMessage, Language, Mode, PromptBuilder};
use crate::verdict::{
    AnswerFormat, Assessment, Judgment, Preference, ShownFirst, Verdict, Winner, expected_score,
    parse_judgment, parse_preference,
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

/// The first request's lock, its setup failure, and the count of setup failures in a row.
#[derive(Default)]
pub(super) struct Gate {
    open: AtomicBool,
    first: tokio::sync::Mutex<()>,
    /// Set when the first request failed for a reason no request can get past: the rows that
    /// waited behind it stop with the same error instead of sending their own first request.
    shut: std::sync::OnceLock<(String, Option<String>)>,
    failing: AtomicU32,
}

type Shared = Arc<OnceCell<(Asked, Cost)>>;

/// One judge of a run, with its retry layer, its place in the journal's keys and its gate.
pub(super) struct Seat<'a, J> {
    pub judge: Retrying<&'a J>,
    pub fingerprint: serde_json::Value,
    pub model: Arc<str>,
    pub weight: f64,
    pub gate: Gate,
    pub prices: Option<super::Prices>,
}

/// Everything a row needs to be judged, shared by the rows of a run.
pub(super) struct Asker<'a, J> {
    /// The judges every row goes to: one, or a panel.
    pub seats: Vec<Seat<'a, J>>,
    /// A stronger judge for the rows the panel leaves within this margin of a tie.
    pub escalation: Option<(Seat<'a, J>, f64)>,
    /// Judges of a panel whose decision values lie further apart than this make a tie.
    pub max_spread: Option<f64>,
    /// The name written to `judge_model` for rows the panel decides.
    pub name: Arc<str>,
    pub journal: &'a Journal,
    pub prompt: &'a PromptBuilder,
    pub config: &'a RunConfig,
    pub run: RequestKey,
    pub permits: Semaphore,
    pub counters: Counters,
    pub in_flight: Mutex<HashMap<RequestKey, Shared>>,
    pub stop: &'a Stop,
    pub budget: super::budget::Budget,
}

impl<J: Judge> Asker<'_, J> {
    /// The row's verdict and what it cost. Journal errors, setup failures and a stop end the
    /// run; everything else is the row's.
    pub async fn judge_row(&self, row: Row) -> Result<(Row, Verdict, Cost), RunError> {
        let (verdict, cost) = match &row.conversation {
            Err(reason) => (
                Verdict::invalid(reason.clone(), self.name.clone()),
                Cost::NOTHING,
            ),
            Ok(conversation) if conversation.chosen == conversation.rejected => {
                (Verdict::identical(self.name.clone()), Cost::NOTHING)
            }
            Ok(conversation) => self.verdict(row.index, conversation).await?,
        };
        Ok((row, verdict, cost))
    }

    /// Every judge's assessment combined; a row the panel leaves near a tie goes to the
    /// escalation judge, whose verdict then decides.
    async fn verdict(
        &self,
        index: u64,
        conversation: &Conversation,
    ) -> Result<(Verdict, Cost), RunError> {
        let orders =
            self.config
                .order
                .orders_for(index, self.config.seed, conversation.chosen_is_first);
        let assessed = self
            .seats
            .iter()
            .map(|seat| self.assess(seat, index, conversation));
        let mut cost = Cost::NOTHING;
        let mut assessments = Vec::with_capacity(self.seats.len());
        let mut failure = None;
        for result in futures_util::future::join_all(assessed).await {
            let (assessment, spent) = result?;
            cost = cost.add(spent);
            match assessment {
                Ok(assessment) => assessments.push(assessment),
                Err(reason) => failure = failure.or(Some(reason)),
            }
        }
        if let Some(reason) = failure {
            let verdict = Verdict::failed(reason, ShownFirst::of(orders), self.name.clone());
            return Ok((verdict, cost));
        }
        let policy = &self.config.policy;
        let verdict = Verdict::from_panel(assessments, policy, self.max_spread, self.name.clone());
        let Some((seat, below)) = &self.escalation else {
            return Ok((verdict, cost));
        };
        if verdict.margin.is_none_or(|margin| margin.abs() > *below) {
            return Ok((verdict, cost));
        }
        let (assessment, spent) = self.assess(seat, index, conversation).await?;
        let mut escalated = match assessment {
            Ok(assessment) => {
                Verdict::from_panel(vec![assessment], policy, None, seat.model.clone())
            }
            Err(reason) => Verdict::failed(reason, ShownFirst::of(orders), seat.model.clone()),
        };
        escalated.escalated_from = Some(verdict.outcome);
        Ok((escalated, cost.add(spent)))
    }

    /// One judge's view of the row: each order judged, then merged.
    async fn assess(
        &self,
        seat: &Seat<'_, J>,
        index: u64,
        conversation: &Conversation,
    ) -> Result<(Result<Assessment, String>, Cost), RunError> {
        let orders =
            self.config
                .order
                .orders_for(index, self.config.seed, conversation.chosen_is_first);
        let judged = orders
            .iter()
            .map(|&chosen_first| self.judge_order(seat, index, conversation, chosen_first));
        let mut cost = Cost::NOTHING;
        let mut opinions = Vec::with_capacity(orders.len());
        for (result, &chosen_first) in futures_util::future::join_all(judged)
            .await
            .into_iter()
            .zip(orders)
        {
            let (outcome, spent) = result?;
            cost = cost.add(spent);
            match outcome {
                Ok(judgment) => opinions.push((chosen_first, judgment.opinion(chosen_first))),
                Err(reason) => return Ok((Err(reason), cost)),
            }
        }
        let policy = &self.config.policy;
        let assessment = Assessment::of(opinions, policy, seat.model.clone(), seat.weight);
        Ok((Ok(assessment), cost))
    }

    /// The judgment of the pair with the stored chosen response shown first or second.
    async fn judge_order(
        &self,
        seat: &Seat<'_, J>,
        index: u64,
        conversation: &Conversation,
        chosen_first: bool,
    ) -> Result<(Result<Judgment, String>, Cost), RunError> {
        let messages = match self.prompt.render(conversation, chosen_first) {
            Ok(messages) => messages,
            Err(reason) => return Ok((Err(reason), Cost::NOTHING)),
        };
        self.judgment(seat, index, messages).await
    }

    /// A judgment for `messages`, asking once more with a reminder when the answer does not
    /// parse. A resumed run walks the same path through the journal without new requests.
    async fn judgment(
        &self,
        seat: &Seat<'_, J>,
        index: u64,
        messages: Vec<ChatMessage>,
    ) -> Result<(Result<Judgment, String>, Cost), RunError> {
        let (first, cost) = self.ask(seat, index, &messages).await?;
        let (text, error) = match first {
            Asked::Judged(judgment) => return Ok((Ok(judgment), cost)),
            Asked::Failed(reason) => return Ok((Err(reason), cost)),
            Asked::Unparseable { text, error } => (text, error),
        };
        self.counters.parse_retries.fetch_add(1, Ordering::Relaxed);
        let reminder = self.reminder(messages, &text, &error);
        let (second, more) = self.ask(seat, index, &reminder).await?;
        let judgment = match second {
            Asked::Judged(judgment) => Ok(judgment),
            Asked::Failed(reason) => Err(reason),
            Asked::Unparseable { error, .. } => Err(format!("unparseable judge answer: {error}")),
        };
        Ok((judgment, cost.add(more)))
    }

    /// Whether every request `messages` needs is answered in the journal (no call is made).
    pub async fn settled(
        &self,
        seat: &Seat<'_, J>,
        messages: Vec<ChatMessage>,
    ) -> Result<bool, RunError> {
        let key = self.key(seat, &messages);
        Ok(match self.journal.lookup(key).await? {
            Some(Stored::Judged(..)) => true,
            None => false,
            Some(Stored::Unparseable {
                response, error, ..
            }) => {
                let reminder = self.reminder(messages, &response, &error);
                matches!(
                    self.journal.lookup(self.key(seat, &reminder)).await?,
                    Some(Stored::Judged(..) | Stored::Unparseable { .. })
                )
            }
        })
    }

    fn reminder(&self, messages: Vec<ChatMessage>, answer: &str, error: &str) -> Vec<ChatMessage> {
        let language = self.prompt.language();
        reminder_messages(messages, answer, error, language, self.prompt.mode())
    }

    fn key(&self, seat: &Seat<'_, J>, messages: &[ChatMessage]) -> RequestKey {
        RequestKey::new(&seat.fingerprint, self.prompt.template_hash(), messages)
    }

    /// One request: from the journal when answered before, from an identical request in flight,
    /// or from the judge.
    async fn ask(
        &self,
        seat: &Seat<'_, J>,
        index: u64,
        messages: &[ChatMessage],
    ) -> Result<(Asked, Cost), RunError> {
        let key = self.key(seat, messages);
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
                self.send(seat, key, index, messages).await
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
        seat: &Seat<'_, J>,
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
            let request = JudgeRequest {
                messages: messages.to_vec(),
            };
            self.paid_call(seat, &request).await?
        };
        let (reply, cost) = reply;
        // A request deferred to the next batch was not asked: the journal keeps what it had
        // (a batch's failure, say), and the sent count does not grow.
        let deferred = matches!(&reply, Err(failure) if matches!(failure.error, crate::judge::JudgeError::Deferred { .. }));
        let (mut entry, asked, usage) = match reply {
            Ok(reply) => self.read(key, index, &reply),
            Err(failure) => {
                let reason = failure.to_string();
                let entry = self.entry(key, index, EntryStatus::Failed, None, Some(reason.clone()));
                (entry, Asked::Failed(reason), Usage::default())
            }
        };
        entry.cost = cost;
        if deferred {
            self.counters.sent.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.journal.record(entry).await?;
        }
        Ok((
            asked,
            Cost {
                usage,
                from_journal: false,
            },
        ))
    }

    /// A call within the budget: its worst case is reserved first, and replaced by its real
    /// cost after.
    async fn paid_call(
        &self,
        seat: &Seat<'_, J>,
        request: &JudgeRequest,
    ) -> Result<(Result<Reply, Failure>, f64), RunError> {
        let allowance = self.config.pacing.completion_allowance;
        let worst = seat.prices.map_or(0.0, |p| p.worst(request, allowance));
        let reservation = self
            .budget
            .reserve(worst)
            .map_err(|spent| RunError::Budget {
                spent,
                cap: self.budget.cap().unwrap_or(0.0),
            })?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let reply = self.call(seat, request).await;
        // A server that reports no usage is charged the worst case: the cap must hold.
        let cost = match (&reply, seat.prices) {
            (Ok(Ok(reply)), Some(prices)) if reply.usage != Usage::default() => {
                prices.of(reply.usage)
            }
            (Ok(Ok(_)), Some(_)) => worst,
            _ => 0.0,
        };
        self.budget.commit(reservation, cost);
        Ok((reply?, cost))
    }

    /// The judge's reply through the gate: the run's first request goes alone, and a setup
    /// failure then, or many in a row later, stops the run.
    async fn call(
        &self,
        seat: &Seat<'_, J>,
        request: &JudgeRequest,
    ) -> Result<Result<Reply, Failure>, RunError> {
        let gate = &seat.gate;
        let result = if gate.open.load(Ordering::Acquire) {
            seat.judge.ask(request).await
        } else {
            let first = gate.first.lock().await;
            if gate.open.load(Ordering::Acquire) {
                drop(first);
                seat.judge.ask(request).await
            } else if let Some((message, hint)) = gate.shut.get() {
                return Err(RunError::Setup {
                    message: message.clone(),
                    hint: hint.clone(),
                });
            } else {
                let result = seat.judge.ask_first(request).await;
                if let Err(failure) = &result
                    && is_setup(failure)
                {
                    let (message, hint) = (failure.to_string(), error::hint(&failure.error));
                    let _ = gate.shut.set((message.clone(), hint.clone()));
                    return Err(RunError::Setup { message, hint });
                }
                gate.open.store(true, Ordering::Release);
                result
            }
        };
        watch(gate, &result)?;
        Ok(result)
    }

    /// Parses a reply into the entry to record and the outcome of the request.
    fn read(&self, key: RequestKey, index: u64, reply: &Reply) -> (Entry, Asked, Usage) {
        read_reply(key, self.run, index, self.prompt.mode(), reply)
    }

    fn entry(
        &self,
        key: RequestKey,
        row_index: u64,
        status: EntryStatus,
        reply: Option<&Reply>,
        error: Option<String>,
    ) -> Entry {
        entry(key, self.run, row_index, status, reply, error)
    }
}

/// Parses a reply of the `mode` protocol into the entry to record and the request's outcome.
pub(super) fn read_reply(
    key: RequestKey,
    run: RequestKey,
    index: u64,
    mode: Mode,
    reply: &Reply,
) -> (Entry, Asked, Usage) {
    let usage = reply.usage;
    let format = if reply.structured {
        AnswerFormat::Schema
    } else {
        AnswerFormat::Text
    };
    let parsed = match mode {
        Mode::Rating => parse_judgment(&reply.text, format),
        Mode::Pairwise => {
            parse_preference(&reply.text).or_else(|error| unwritten_preference(reply).ok_or(error))
        }
    };
    match parsed {
        Ok(judgment) => {
            let judgment = with_probabilities(judgment, reply);
            let mut entry = entry(key, run, index, EntryStatus::Ok, Some(reply), None);
            entry.judgment = Some(judgment.clone());
            (entry, Asked::Judged(judgment), usage)
        }
        Err(error) => {
            let status = EntryStatus::Unparseable;
            let entry = entry(key, run, index, status, Some(reply), Some(error.clone()));
            let text = entry.response.clone().unwrap_or_default();
            (entry, Asked::Unparseable { text, error }, usage)
        }
    }
}

/// The journal entry of one request.
pub(super) fn entry(
    key: RequestKey,
    run: RequestKey,
    row_index: u64,
    status: EntryStatus,
    reply: Option<&Reply>,
    error: Option<String>,
) -> Entry {
    Entry {
        key,
        run,
        row_index,
        status,
        response: reply.map(|r| truncated(&r.text, STORED_ANSWER)),
        judgment: None,
        prompt_tokens: reply.map_or(0, |r| r.usage.prompt_tokens),
        completion_tokens: reply.map_or(0, |r| r.usage.completion_tokens),
        cost: 0.0,
        latency_ms: reply.map_or(0, |r| {
            u64::try_from(r.latency.as_millis()).unwrap_or(u64::MAX)
        }),
        attempts: reply.map_or(0, |r| r.attempts),
        error,
    }
}

/// Counts setup failures in a row; many stop the run.
fn watch(gate: &Gate, result: &Result<Reply, Failure>) -> Result<(), RunError> {
    match result {
        Ok(_) => gate.failing.store(0, Ordering::Relaxed),
        Err(failure) if is_setup(failure) => {
            let count = gate.failing.fetch_add(1, Ordering::Relaxed) + 1;
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

/// A pairwise verdict the judge did not write but whose probabilities it gave: under
/// log-probability scoring they are the verdict, whatever text followed.
fn unwritten_preference(reply: &Reply) -> Option<Judgment> {
    let Some(Probabilities::Preference(p)) = reply.probabilities else {
        return None;
    };
    let winner = if p[0] >= p[1] && p[0] >= p[2] {
        Winner::A
    } else if p[2] >= p[1] {
        Winner::B
    } else {
        Winner::Tie
    };
    Some(Judgment::Preference(Preference {
        winner,
        probabilities: Some(p),
        reason: String::new(),
    }))
}

/// Under log-probability scoring, replaces each written score with the expected score, or the
/// written verdict with the verdict token's probabilities.
fn with_probabilities(mut judgment: Judgment, reply: &Reply) -> Judgment {
    match (&mut judgment, reply.probabilities) {
        (
            Judgment::Ratings {
                response_a,
                response_b,
            },
            Some(Probabilities::Scores([a, b])),
        ) => {
            response_a.score = expected_score(&a);
            response_a.distribution = Some(a);
            response_b.score = expected_score(&b);
            response_b.distribution = Some(b);
        }
        (Judgment::Preference(preference), Some(Probabilities::Preference(p))) => {
            preference.probabilities = Some(p);
        }
        _ => {}
    }
    judgment
}

/// The conversation so far, the start of the unreadable answer (never all of it: an answer can
/// be huge, and it goes back to a paid endpoint), and a reminder of the expected shape.
pub(super) fn reminder_messages(
    mut messages: Vec<ChatMessage>,
    answer: &str,
    error: &str,
    language: Language,
    mode: Mode,
) -> Vec<ChatMessage> {
    let shape = r#"{"response_a": {"rationale": "...", "score": 1-5}, "response_b": {"rationale": "...", "score": 1-5}}"#;
    let reminder = match (language, mode) {
        (Language::En, Mode::Rating) => format!(
            "Your answer could not be read ({error}). Reply again with only the JSON object: {shape}"
        ),
        (Language::It, Mode::Rating) => format!(
            "Non è stato possibile leggere la tua risposta ({error}). Rispondi di nuovo solo con l'oggetto JSON: {shape}"
        ),
        (Language::En, Mode::Pairwise) => format!(
            "Your answer could not be read ({error}). Reply again: A, B or tie alone on the first line, then a one-sentence reason."
        ),
        (Language::It, Mode::Pairwise) => format!(
            "Non è stato possibile leggere la tua risposta ({error}). Rispondi di nuovo: A, B oppure tie da solo sulla prima riga, poi una motivazione di una frase."
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reply(text: &str, probabilities: Option<Probabilities>) -> Reply {
        Reply {
            text: text.to_owned(),
            usage: Usage::default(),
            probabilities,
            structured: false,
            pause: None,
            attempts: 1,
            latency: Duration::ZERO,
        }
    }

    fn asked(reply: &Reply) -> Asked {
        let key = RequestKey([0; 32]);
        read_reply(key, key, 0, Mode::Pairwise, reply).1
    }

    #[test]
    fn a_pairwise_verdict_comes_from_its_probabilities_when_the_text_is_not_one() {
        let probabilities = Some(Probabilities::Preference([0.2, 0.1, 0.7]));
        let Asked::Judged(Judgment::Preference(preference)) = asked(&reply("<", probabilities))
        else {
            panic!("the probabilities are the verdict");
        };
        assert_eq!(preference.winner, Winner::B);
        assert_eq!(preference.probabilities, Some([0.2, 0.1, 0.7]));
        // Without probabilities, text that is not a verdict stays unreadable.
        assert!(matches!(
            asked(&reply("<", None)),
            Asked::Unparseable { .. }
        ));
        // A written verdict keeps its reason, and the probabilities decide.
        let Asked::Judged(Judgment::Preference(written)) = asked(&reply(
            "A\nclearer",
            Some(Probabilities::Preference([0.6, 0.1, 0.3])),
        )) else {
            panic!("a written verdict");
        };
        assert_eq!(
            (written.winner, written.reason.as_str()),
            (Winner::A, "clearer")
        );
    }
}
