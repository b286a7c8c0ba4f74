//! One row through the judge: render each order, take the answer from the journal or ask the
//! judge (once more with a reminder when an answer does not parse), record it, and decide.

use super::{Counters, Row, RunConfig, RunError};
use crate::dataset::Conversation;
use crate::journal::{Entry, EntryStatus, Journal, RequestKey};
use crate::judge::{Judge, JudgeRequest, Reply, Retrying, Usage};
use crate::prompt::{ChatMessage, Language, PromptBuilder};
use crate::verdict::{
    Judgment, Rating, ShownFirst, Verdict, expected_score, merge_orders, parse_judgment,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Semaphore;

/// What one row cost: tokens, and whether every answer came from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Tokens of every request made for the row (journal answers count their original tokens).
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

    fn sent(usage: Usage) -> Cost {
        Cost {
            usage,
            from_journal: false,
        }
    }

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
enum Asked {
    Judged(Judgment),
    Unparseable { text: String, error: String },
    Failed(String),
}

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
}

impl<J: Judge> Asker<'_, J> {
    /// The row's verdict and what it cost. Journal errors stop the run; everything else is the
    /// row's.
    pub async fn judge_row(&self, row: Row) -> Result<(Row, Verdict, Cost), RunError> {
        let (verdict, cost) = match &row.conversation {
            Err(reason) => (
                Verdict::invalid(reason.clone(), self.model.clone()),
                Cost::NOTHING,
            ),
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
        let verdict = match failure {
            Some(reason) => Verdict::failed(reason, shown_first, self.model.clone()),
            None => {
                let (chosen, rejected) = merge_orders(&ratings);
                Verdict::decide(
                    chosen,
                    rejected,
                    &self.config.policy,
                    shown_first,
                    self.model.clone(),
                )
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

    /// A judgment for `messages`, asking once more with a reminder when the answer does not parse.
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
        let reminder = reminder_messages(messages, text, &error, self.prompt.language());
        let (second, more) = self.ask(index, &reminder).await?;
        let judgment = match second {
            Asked::Judged(judgment) => Ok(judgment),
            Asked::Failed(reason) => Err(reason),
            Asked::Unparseable { error, .. } => Err(format!("unparseable judge answer: {error}")),
        };
        Ok((judgment, cost.add(more)))
    }

    /// One request: from the journal when answered before, else from the judge, recorded.
    async fn ask(&self, index: u64, messages: &[ChatMessage]) -> Result<(Asked, Cost), RunError> {
        let key = RequestKey::new(&self.fingerprint, self.prompt.template_hash(), messages);
        if let Some((judgment, usage)) = self.journal.lookup(key).await? {
            self.counters.from_journal.fetch_add(1, Ordering::Relaxed);
            return Ok((
                Asked::Judged(judgment),
                Cost {
                    usage,
                    from_journal: true,
                },
            ));
        }
        let reply = {
            let _permit = self
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed; this is a bug");
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.judge
                .ask(&JudgeRequest {
                    messages: messages.to_vec(),
                })
                .await
        };
        let (entry, asked, usage) = match reply {
            Ok(reply) => self.read(key, index, reply),
            Err(failure) => {
                let reason = failure.to_string();
                let entry = self.entry(key, index, EntryStatus::Failed, None, Some(reason.clone()));
                (entry, Asked::Failed(reason), Usage::default())
            }
        };
        self.journal.record(entry).await?;
        Ok((asked, Cost::sent(usage)))
    }

    /// Parses a reply into the entry to record and the outcome of the request.
    fn read(&self, key: RequestKey, index: u64, reply: Reply) -> (Entry, Asked, Usage) {
        let usage = reply.usage;
        match parse_judgment(&reply.text) {
            Ok(judgment) => {
                let judgment = with_distributions(judgment, &reply);
                let mut entry = self.entry(key, index, EntryStatus::Ok, Some(&reply), None);
                entry.judgment = Some(judgment.clone());
                (entry, Asked::Judged(judgment), usage)
            }
            Err(error) => {
                let entry = self.entry(
                    key,
                    index,
                    EntryStatus::Unparseable,
                    Some(&reply),
                    Some(error.clone()),
                );
                (
                    entry,
                    Asked::Unparseable {
                        text: reply.text,
                        error,
                    },
                    usage,
                )
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
            response: reply.map(|r| r.text.clone()),
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

/// The conversation so far, the unreadable answer, and a reminder of the expected shape.
fn reminder_messages(
    mut messages: Vec<ChatMessage>,
    answer: String,
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
    messages.push(ChatMessage {
        role: "assistant".into(),
        content: answer,
    });
    messages.push(ChatMessage {
        role: "user".into(),
        content: reminder,
    });
    messages
}
