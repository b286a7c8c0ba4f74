//! Batch files: the requests a run still needs, written as OpenAI Batch input lines; the
//! answers of a batch (OpenAI's output lines, or any server's through a replayer) read into the
//! journal; and a driver for OpenAI's Batch API that does both, resumably.
//!
//! The requests are walked exactly as a run walks them, so the journal's keys are the ones an
//! online run would use: after an import, a normal run finds every answer and sends nothing,
//! and a row whose answer did not parse gets its reminder in the next batch.

use super::ask::{self, Asked};
use super::{Input, RunConfig, RunError, run_signature};
use crate::journal::{BatchRecord, EntryStatus, Journal, RequestKey, Stored};
use crate::judge::batch::{BatchClient, BatchState};
use crate::judge::{Judge, JudgeRequest, OpenAiJudge};
use crate::prompt::{ChatMessage, PromptBuilder};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Requests per batch input file at most, as OpenAI's Batch API accepts.
const FILE_REQUESTS: usize = 50_000;
/// Bytes per batch input file at most, as OpenAI's Batch API accepts.
const FILE_BYTES: usize = 200 << 20;
/// Rounds of batches one drive submits at most: the answers, then the reminders of answers
/// that did not parse, then the reminders' own failures.
const ROUNDS: usize = 3;

/// Errors of batch files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A line of a batch output file is not an answer line.
    #[error("{path}: line {line}: {message}", path = path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A batch file cannot be read or written.
    #[error("{path}: {source}", path = path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Files or Batches endpoint failed.
    #[error("the batch API: {0}")]
    Api(String),
}

fn batch(error: BatchError) -> RunError {
    RunError::Batch(Box::new(error))
}

/// A request the run still needs.
struct Pending {
    key: RequestKey,
    row_index: u64,
    messages: Vec<ChatMessage>,
}

/// Every request the run's rows still need from `judge`: an order without an answer, or the
/// reminder after an answer that did not parse; each once.
async fn pending(
    input: &Input,
    prompt: &PromptBuilder,
    judge: &OpenAiJudge,
    journal: &Journal,
    config: &RunConfig,
) -> Result<Vec<Pending>, RunError> {
    let fingerprint = judge.fingerprint();
    let key =
        |messages: &[ChatMessage]| RequestKey::new(&fingerprint, prompt.template_hash(), messages);
    let mut seen = HashSet::new();
    let mut pending = Vec::new();
    for row in input.rows_iter(config.rows(input.rows()), config.seed)? {
        let row = row?;
        let Ok(conversation) = &row.conversation else {
            continue;
        };
        if conversation.chosen == conversation.rejected {
            continue;
        }
        for &chosen_first in
            config
                .order
                .orders_for(row.index, config.seed, conversation.chosen_is_first)
        {
            let Ok(messages) = prompt.render(conversation, chosen_first) else {
                continue;
            };
            let needed = match journal.lookup(key(&messages)).await? {
                None => Some(messages),
                Some(Stored::Judged(..)) => None,
                Some(Stored::Unparseable {
                    response, error, ..
                }) => {
                    let reminder = ask::reminder_messages(
                        messages,
                        &response,
                        &error,
                        prompt.language(),
                        prompt.mode(),
                    );
                    journal
                        .lookup(key(&reminder))
                        .await?
                        .is_none()
                        .then_some(reminder)
                }
            };
            if let Some(messages) = needed {
                let request_key = key(&messages);
                if seen.insert(request_key) {
                    pending.push(Pending {
                        key: request_key,
                        row_index: row.index,
                        messages,
                    });
                }
            }
        }
    }
    Ok(pending)
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The files, in order.
    pub files: Vec<PathBuf>,
    /// Requests in them.
    pub requests: usize,
}

/// Writes the requests the run still needs as OpenAI Batch input files: `path`, then
/// `STEM-2.EXT`, ... when a file would pass 50,000 requests or 200 MB.
pub async fn export(
    input: &Input,
    prompt: &PromptBuilder,
    judge: &OpenAiJudge,
    config: &RunConfig,
    path: &Path,
) -> Result<Exported, RunError> {
    let journal = Journal::open(&config.journal)?;
    let pending = pending(input, prompt, judge, &journal, config).await?;
    write_files(&pending, judge, path)
}

fn write_files(
    pending: &[Pending],
    judge: &OpenAiJudge,
    path: &Path,
) -> Result<Exported, RunError> {
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for request in pending {
        let line = serde_json::json!({
            "custom_id": request.key.to_hex(),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": judge.request_body(&JudgeRequest { messages: request.messages.clone() }),
        })
        .to_string();
        let full = chunks.last().is_none_or(|chunk| {
            chunk.len() >= FILE_REQUESTS || bytes + line.len() + 1 > FILE_BYTES
        });
        if full {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += line.len() + 1;
        chunks
            .last_mut()
            .expect("a chunk was started; this is a bug")
            .push(line);
    }
    let mut files: Vec<PathBuf> = Vec::with_capacity(chunks.len());
    for (number, chunk) in chunks.iter().enumerate() {
        let target = numbered(path, number + 1);
        let mut text = chunk.join("\n");
        text.push('\n');
        fs_err::write(&target, text).map_err(|source| {
            batch(BatchError::File {
                path: target.clone(),
                source,
            })
        })?;
        files.push(target);
    }
    Ok(Exported {
        files,
        requests: pending.len(),
    })
}

/// `path` for the first file, `STEM-N.EXT` for the N-th.
fn numbered(path: &Path, number: usize) -> PathBuf {
    if number == 1 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(extension) => format!("{stem}-{number}.{}", extension.to_string_lossy()),
        None => format!("{stem}-{number}"),
    };
    path.with_file_name(name)
}

/// What an import found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Answers that parsed, now in the journal.
    pub judged: usize,
    /// Answers that did not parse: their reminders go in the next batch.
    pub unparseable: usize,
    /// Requests the batch could not answer: they go in the next batch.
    pub failed: usize,
    /// Lines for requests this run does not need (answered already, or another run's).
    pub unknown: usize,
}

/// Reads batch output files (OpenAI's output and error files, or any replayer's) into the
/// journal.
pub async fn import(
    input: &Input,
    prompt: &PromptBuilder,
    judge: &OpenAiJudge,
    config: &RunConfig,
    files: &[PathBuf],
) -> Result<Imported, RunError> {
    let journal = Journal::open(&config.journal)?;
    import_into(input, prompt, judge, config, &journal, files).await
}

async fn import_into(
    input: &Input,
    prompt: &PromptBuilder,
    judge: &OpenAiJudge,
    config: &RunConfig,
    journal: &Journal,
    files: &[PathBuf],
) -> Result<Imported, RunError> {
    let wanted: HashMap<String, u64> = pending(input, prompt, judge, journal, config)
        .await?
        .into_iter()
        .map(|p| (p.key.to_hex(), p.row_index))
        .collect();
    let run = run_signature(&serde_json::json!([judge.fingerprint()]), prompt, config);
    let mut found = Imported::default();
    for path in files {
        let file = std::fs::File::open(path).map_err(|source| {
            batch(BatchError::File {
                path: path.clone(),
                source,
            })
        })?;
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| {
                batch(BatchError::File {
                    path: path.clone(),
                    source,
                })
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let at = |message: String| {
                batch(BatchError::Line {
                    path: path.clone(),
                    line: number + 1,
                    message,
                })
            };
            let answer: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| at(format!("not JSON: {e}")))?;
            let custom_id = answer["custom_id"]
                .as_str()
                .ok_or_else(|| at("no custom_id".into()))?;
            let Some(&row_index) = wanted.get(custom_id) else {
                found.unknown += 1;
                continue;
            };
            let key = key_of(custom_id)
                .ok_or_else(|| at(format!("custom_id {custom_id:?} is not a request key")))?;
            let mut entry = answer_entry(&answer, key, run, row_index, judge, prompt);
            entry.cost = config.prices.map_or(0.0, |p| {
                p.of(crate::judge::Usage {
                    prompt_tokens: entry.prompt_tokens,
                    completion_tokens: entry.completion_tokens,
                })
            });
            match entry.status {
                EntryStatus::Ok => found.judged += 1,
                EntryStatus::Unparseable => found.unparseable += 1,
                EntryStatus::Failed => found.failed += 1,
            }
            journal.record(entry).await?;
        }
    }
    Ok(found)
}

/// The journal entry of one answer line.
fn answer_entry(
    answer: &serde_json::Value,
    key: RequestKey,
    run: RequestKey,
    row_index: u64,
    judge: &OpenAiJudge,
    prompt: &PromptBuilder,
) -> crate::journal::Entry {
    let response = &answer["response"];
    let status = response["status_code"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok());
    let failed = |reason: String| {
        let reason = judge.redactor().scrub(&reason).into_owned();
        ask::entry(key, run, row_index, EntryStatus::Failed, None, Some(reason))
    };
    match (status, response.get("body")) {
        (Some(status), Some(body)) => {
            match judge.read_batch_answer(status, body.to_string().as_bytes()) {
                Ok(reply) => {
                    let (entry, _, _): (_, Asked, _) =
                        ask::read_reply(key, run, row_index, prompt.mode(), &reply);
                    entry
                }
                Err(error) => failed(format!("batch: {error}")),
            }
        }
        _ => {
            let message = answer["error"]["message"]
                .as_str()
                .unwrap_or("the batch gave no answer");
            failed(format!("batch: {message}"))
        }
    }
}

fn key_of(hex: &str) -> Option<RequestKey> {
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(RequestKey(key))
}

/// How a drive of the Batch API went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Driven {
    /// Batches submitted by this drive.
    pub submitted: usize,
    /// Batches resumed from an earlier run's journal.
    pub resumed: usize,
    /// What the imports found, in all.
    pub imported: Imported,
}

/// Drives OpenAI's Batch API to the end: batches an earlier run submitted and did not import
/// are polled and imported first (never submitted twice: their ids live in the journal), then
/// the requests still needed are submitted, polled and imported, up to three rounds.
#[allow(clippy::too_many_arguments)] // the run's pieces, as `rerank` takes them, plus the client
pub async fn drive(
    input: &Input,
    prompt: &PromptBuilder,
    judge: &OpenAiJudge,
    client: &BatchClient,
    config: &RunConfig,
    poll: Duration,
    progress: &dyn Fn(&BatchState),
) -> Result<Driven, RunError> {
    let _lock = super::folder::lock(&config.output, config.shard)?;
    let journal = Journal::open(&config.journal)?;
    let folder = config.output.join("batches");
    fs_err::create_dir_all(&folder).map_err(RunError::Folder)?;
    let mut driven = Driven::default();
    for round in 0..=ROUNDS {
        for record in journal.batches().await?.into_iter().filter(|r| !r.imported) {
            driven.resumed += usize::from(round == 0);
            let (record, files) = finish(client, &journal, record, &folder, poll, progress).await?;
            let found = import_into(input, prompt, judge, config, &journal, &files).await?;
            driven.imported = add(driven.imported, found);
            // Marked only once its answers are in: an interrupted import is read again.
            journal
                .save_batch(BatchRecord {
                    imported: true,
                    ..record
                })
                .await?;
        }
        let pending = pending(input, prompt, judge, &journal, config).await?;
        if pending.is_empty() || round == ROUNDS {
            break;
        }
        let exported = write_files(
            &pending,
            judge,
            &folder.join(format!("input-{}.jsonl", driven.submitted + 1)),
        )?;
        for file in &exported.files {
            let uploaded = client.upload(file).await.map_err(|e| api(&e))?;
            let state = client.create(&uploaded).await.map_err(|e| api(&e))?;
            let input_file = file.display().to_string();
            journal
                .save_batch(BatchRecord {
                    id: state.id,
                    input_file,
                    status: state.status,
                    imported: false,
                })
                .await?;
            driven.submitted += 1;
        }
    }
    Ok(driven)
}

fn api(error: &crate::judge::JudgeError) -> RunError {
    batch(BatchError::Api(error.to_string()))
}

fn add(a: Imported, b: Imported) -> Imported {
    Imported {
        judged: a.judged + b.judged,
        unparseable: a.unparseable + b.unparseable,
        failed: a.failed + b.failed,
        unknown: a.unknown + b.unknown,
    }
}

/// Polls a batch until it ends and downloads its output and error files.
async fn finish(
    client: &BatchClient,
    journal: &Journal,
    mut record: BatchRecord,
    folder: &Path,
    poll: Duration,
    progress: &dyn Fn(&BatchState),
) -> Result<(BatchRecord, Vec<PathBuf>), RunError> {
    let state = loop {
        let state = client.poll(&record.id).await.map_err(|e| api(&e))?;
        progress(&state);
        if state.finished() {
            break state;
        }
        if state.status != record.status {
            record.status.clone_from(&state.status);
            journal.save_batch(record.clone()).await?;
        }
        tokio::time::sleep(poll).await;
    };
    let mut files = Vec::new();
    for (file_id, suffix) in [
        (&state.output_file_id, "output"),
        (&state.error_file_id, "errors"),
    ] {
        if let Some(file_id) = file_id {
            let path = folder.join(format!("{}-{suffix}.jsonl", record.id));
            client.download(file_id, &path).await.map_err(|e| api(&e))?;
            files.push(path);
        }
    }
    record.status = state.status;
    journal.save_batch(record.clone()).await?;
    Ok((record, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_from_their_hex() {
        let key = RequestKey([0xab; 32]);
        assert_eq!(key_of(&key.to_hex()), Some(key));
        assert_eq!(key_of("zz"), None);
        assert_eq!(key_of(&"g".repeat(64)), None);
    }

    #[test]
    fn later_files_are_numbered() {
        assert_eq!(
            numbered(Path::new("out/batch.jsonl"), 1),
            Path::new("out/batch.jsonl")
        );
        assert_eq!(
            numbered(Path::new("out/batch.jsonl"), 3),
            Path::new("out/batch-3.jsonl")
        );
    }
}
