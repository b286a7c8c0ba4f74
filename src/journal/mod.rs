//! The crash-safe journal: every judge request and its answer, in SQLite (WAL), keyed by a hash
//! of everything that determines the answer.
//!
//! A row counts as done only once its answer is committed here, so `kill -9` loses at most the
//! requests in flight, and a second run sends only the requests without a successful entry.
//! Decision settings are not part of the key: changing them rebuilds the output from the journal
//! with no new calls. The key never includes the server address or the API key, and neither is
//! stored.
//!
//! One thread owns the connection. Writes that arrive together are committed in one transaction
//! (group commit), which keeps the cost per row in microseconds at thousands of rows a second.

use crate::judge::Usage;
use crate::prompt::{ChatMessage, hex};
use crate::verdict::Judgment;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The journal's format version; part of every key. A journal of another version is refused.
pub const FORMAT_VERSION: u32 = 1;
/// Most commands handled in one transaction.
const GROUP_COMMIT: usize = 1024;

/// A request key: SHA-256 of the judge fingerprint, the template hash, the rendered messages and
/// the format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey(pub [u8; 32]);

impl RequestKey {
    /// Computes the key of one request.
    pub fn new(
        fingerprint: &serde_json::Value,
        template_hash: &str,
        messages: &[ChatMessage],
    ) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(FORMAT_VERSION.to_le_bytes());
        // serde_json sorts object keys, so the fingerprint's text is canonical.
        hasher.update(fingerprint.to_string().as_bytes());
        hasher.update([0]);
        hasher.update(template_hash.as_bytes());
        for message in messages {
            hasher.update([0]);
            hasher.update(message.role.as_bytes());
            hasher.update([0]);
            hasher.update((message.content.len() as u64).to_le_bytes());
            hasher.update(message.content.as_bytes());
        }
        RequestKey(hasher.finalize().into())
    }

    /// The key in hexadecimal.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// How a recorded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Answered and parsed; reused by later runs.
    Ok,
    /// Answered, but the answer could not be parsed; sent again by later runs.
    Unparseable,
    /// No answer after retries; sent again by later runs.
    Failed,
}

impl EntryStatus {
    fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Ok => "ok",
            EntryStatus::Unparseable => "unparseable",
            EntryStatus::Failed => "failed",
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The request key.
    pub key: RequestKey,
    /// The run signature (judge, template and input), used to count finished rows.
    pub run: RequestKey,
    /// The input row the request is for.
    pub row_index: u64,
    /// How the request ended.
    pub status: EntryStatus,
    /// The judge's raw answer, when there was one.
    pub response: Option<String>,
    /// The parsed judgment, for `Ok` entries.
    pub judgment: Option<Judgment>,
    /// Prompt tokens used.
    pub prompt_tokens: u64,
    /// Completion tokens used.
    pub completion_tokens: u64,
    /// What the request cost, in US dollars, at the run's prices (0 without prices).
    pub cost: f64,
    /// Milliseconds from the first attempt to the answer or the final error.
    pub latency_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The error, for failed and unparseable entries.
    pub error: Option<String>,
}

/// An answer found in the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// A parsed judgment, and the tokens its request used.
    Judged(Judgment, Usage),
    /// An answer that did not parse: the run that got it asked again with a reminder quoting it,
    /// and a resumed run follows the same path from here without a new request.
    Unparseable {
        /// The judge's raw answer.
        response: String,
        /// Why it did not parse.
        error: String,
        /// The tokens its request used.
        usage: Usage,
    },
}

/// Errors of the journal; any of them stops the run, since answers could otherwise be lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// SQLite failed (disk full, file locked, not a database, ...).
    #[error("journal {path}", path = path.display())]
    Database {
        /// The journal file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The journal's folder could not be created.
    #[error("journal {path}", path = path.display())]
    Folder {
        /// The journal file.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// The journal was written by a rejudge with another format.
    #[error(
        "journal {path} has format version {found}, this rejudge reads version {expected}\nhint: move it aside, or pass --journal with a new path (its answers cannot be reused)",
        path = path.display()
    )]
    Version {
        /// The journal file.
        path: PathBuf,
        /// The version found in the file.
        found: String,
        /// The version this build reads.
        expected: u32,
    },
    /// The journal thread stopped.
    #[error("journal {path}: the journal thread stopped", path = path.display())]
    Closed {
        /// The journal file.
        path: PathBuf,
    },
}

/// SQLite's error, shared by every writer of one group commit.
type Shared = Arc<rusqlite::Error>;
/// Tells a writer its record is committed, or why not.
type Acknowledgement = oneshot::Sender<Result<(), Shared>>;

enum Command {
    Lookup(RequestKey, oneshot::Sender<Result<Option<Stored>, Shared>>),
    Record(Box<Entry>, Acknowledgement),
    IsEmpty(oneshot::Sender<Result<bool, Shared>>),
    Spent(oneshot::Sender<Result<f64, Shared>>),
    Batches(oneshot::Sender<Result<Vec<BatchRecord>, Shared>>),
    SaveBatch(BatchRecord, Acknowledgement),
}

/// A batch submitted to a provider's Batch API, kept so that a rerun resumes it instead of
/// submitting its requests again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// The provider's batch id.
    pub id: String,
    /// The input file it was made from, as uploaded.
    pub input_file: String,
    /// Its last known status (`validating`, `in_progress`, `completed`, ...).
    pub status: String,
    /// Whether its answers are in the journal.
    pub imported: bool,
}

/// A handle on the journal thread.
pub struct Journal {
    path: PathBuf,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Opens or creates the journal at `path`, refusing one of another format version.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let database = |e: rusqlite::Error| JournalError::Database {
            path: path.to_path_buf(),
            source: Arc::new(e),
        };
        let folder = |e: std::io::Error| JournalError::Folder {
            path: path.to_path_buf(),
            source: e,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(folder)?;
        }
        let connection = Connection::open(path).map_err(database)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
            )
            .map_err(database)?;
        check_version(&connection, path)?;
        create_tables(&connection).map_err(database)?;
        let (commands, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rejudge-journal".into())
            .spawn(move || serve(connection, &receiver))
            .map_err(folder)?;
        Ok(Journal {
            path: path.to_path_buf(),
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The answer recorded for `key`: a judgment, or an answer that did not parse. Failed
    /// requests are not answers: they are asked again.
    pub async fn lookup(&self, key: RequestKey) -> Result<Option<Stored>, JournalError> {
        self.ask(|reply| Command::Lookup(key, reply)).await
    }

    /// Records a request's end; returns once it is committed.
    pub async fn record(&self, entry: Entry) -> Result<(), JournalError> {
        self.ask(|reply| Command::Record(Box::new(entry), reply))
            .await
    }

    /// Whether nothing is recorded yet (a fresh run need not look for earlier answers).
    pub async fn is_empty(&self) -> Result<bool, JournalError> {
        self.ask(Command::IsEmpty).await
    }

    /// The batches submitted so far, oldest first.
    pub async fn batches(&self) -> Result<Vec<BatchRecord>, JournalError> {
        self.ask(Command::Batches).await
    }

    /// Records a batch or its new status.
    pub async fn save_batch(&self, record: BatchRecord) -> Result<(), JournalError> {
        self.ask(|reply| Command::SaveBatch(record, reply)).await
    }

    /// What every request recorded so far cost, in US dollars.
    pub async fn spent(&self) -> Result<f64, JournalError> {
        self.ask(Command::Spent).await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, Shared>>) -> Command,
    ) -> Result<T, JournalError> {
        let closed = || JournalError::Closed {
            path: self.path.clone(),
        };
        let (reply, answer) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or_else(closed)?
            .send(command(reply))
            .map_err(|_| closed())?;
        answer
            .await
            .map_err(|_| closed())?
            .map_err(|source| JournalError::Database {
                path: self.path.clone(),
                source,
            })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the channel ends the thread after it has committed what it holds.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn check_version(connection: &Connection, path: &Path) -> Result<(), JournalError> {
    let database = |e: rusqlite::Error| JournalError::Database {
        path: path.to_path_buf(),
        source: Arc::new(e),
    };
    let found: Option<String> = connection
        .query_row(
            "SELECT value FROM meta WHERE name = 'format_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(database)?;
    match found {
        Some(version) if version == FORMAT_VERSION.to_string() => Ok(()),
        Some(version) => Err(JournalError::Version {
            path: path.to_path_buf(),
            found: version,
            expected: FORMAT_VERSION,
        }),
        None => connection
            .execute(
                "INSERT INTO meta (name, value) VALUES ('format_version', ?1)",
                [FORMAT_VERSION.to_string()],
            )
            .map(drop)
            .map_err(database),
    }
}

fn batches(connection: &Connection) -> rusqlite::Result<Vec<BatchRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, input_file, status, imported FROM batches ORDER BY created_at, id",
    )?;
    statement
        .query_map([], |row| {
            Ok(BatchRecord {
                id: row.get(0)?,
                input_file: row.get(1)?,
                status: row.get(2)?,
                imported: row.get(3)?,
            })
        })?
        .collect()
}

fn save_batch(connection: &Connection, record: &BatchRecord) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO batches (id, input_file, status, imported, created_at)
         VALUES (?1, ?2, ?3, ?4, strftime('%s', 'now'))
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, imported = excluded.imported",
        params![record.id, record.input_file, record.status, record.imported],
    )?;
    Ok(())
}

/// The requests and batches tables, and the columns later versions added.
fn create_tables(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS requests (
            key BLOB PRIMARY KEY,
            run BLOB NOT NULL,
            row_index INTEGER NOT NULL,
            status TEXT NOT NULL,
            response TEXT,
            judgment TEXT,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_ms INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            error TEXT,
            recorded_at INTEGER NOT NULL,
            cost REAL NOT NULL DEFAULT 0
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS batches (
            id TEXT PRIMARY KEY,
            input_file TEXT NOT NULL,
            status TEXT NOT NULL,
            imported INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
         );",
    )?;
    add_cost_column(connection)
}

/// Journals written before costs were recorded get the column, every earlier request at 0.
fn add_cost_column(connection: &Connection) -> rusqlite::Result<()> {
    let mut columns = connection.prepare("SELECT name FROM pragma_table_info('requests')")?;
    let names: Vec<String> = columns
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !names.iter().any(|name| name == "cost") {
        connection.execute_batch("ALTER TABLE requests ADD COLUMN cost REAL NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// The journal thread: answers lookups at once and commits the records that arrived together in
/// one transaction before acknowledging any of them.
fn serve(mut connection: Connection, commands: &mpsc::Receiver<Command>) {
    let mut pending: Vec<(Box<Entry>, Acknowledgement)> = Vec::new();
    while let Ok(first) = commands.recv() {
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(command) = next.take() {
            match command {
                Command::Lookup(key, reply) => {
                    let _ = reply.send(lookup(&connection, key).map_err(Arc::new));
                }
                Command::IsEmpty(reply) => {
                    let _ = reply.send(is_empty(&connection).map_err(Arc::new));
                }
                Command::Spent(reply) => {
                    let spent = connection.query_row(
                        "SELECT COALESCE(SUM(cost), 0.0) FROM requests",
                        [],
                        |row| row.get(0),
                    );
                    let _ = reply.send(spent.map_err(Arc::new));
                }
                Command::Record(entry, reply) => pending.push((entry, reply)),
                Command::Batches(reply) => {
                    let _ = reply.send(batches(&connection).map_err(Arc::new));
                }
                Command::SaveBatch(record, reply) => {
                    let _ = reply.send(save_batch(&connection, &record).map_err(Arc::new));
                }
            }
            handled += 1;
            if handled < GROUP_COMMIT {
                next = commands.try_recv().ok();
            }
        }
        if !pending.is_empty() {
            let result = commit(
                &mut connection,
                pending.iter().map(|(entry, _)| entry.as_ref()),
            )
            .map_err(Arc::new);
            for (_, reply) in pending.drain(..) {
                let _ = reply.send(result.clone());
            }
        }
    }
}

fn lookup(connection: &Connection, key: RequestKey) -> rusqlite::Result<Option<Stored>> {
    let mut statement = connection.prepare_cached(
        "SELECT status, judgment, response, error, prompt_tokens, completion_tokens
         FROM requests WHERE key = ?1 AND status IN ('ok', 'unparseable')",
    )?;
    let found = statement
        .query_row([&key.0[..]], |row| {
            let usage = Usage {
                prompt_tokens: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                completion_tokens: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
            };
            let text = |column| row.get::<_, Option<String>>(column);
            Ok((
                row.get::<_, String>(0)?,
                text(1)?,
                text(2)?,
                text(3)?,
                usage,
            ))
        })
        .optional()?;
    // An entry that no longer reads back is treated as absent and asked again.
    Ok(found.and_then(
        |(status, judgment, response, error, usage)| match status.as_str() {
            "ok" => Some(Stored::Judged(
                serde_json::from_str(judgment.as_deref()?).ok()?,
                usage,
            )),
            _ => Some(Stored::Unparseable {
                response: response?,
                error: error.unwrap_or_default(),
                usage,
            }),
        },
    ))
}

fn is_empty(connection: &Connection) -> rusqlite::Result<bool> {
    connection.query_row("SELECT NOT EXISTS (SELECT 1 FROM requests)", [], |row| {
        row.get(0)
    })
}

/// SQLite stores signed 64-bit integers; counts beyond that saturate rather than wrap.
fn sqlite_integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn commit<'a>(
    connection: &mut Connection,
    entries: impl Iterator<Item = &'a Entry>,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(
            "INSERT OR REPLACE INTO requests (key, run, row_index, status, response, judgment,
                    prompt_tokens, completion_tokens, latency_ms, attempts, error, recorded_at, cost)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, strftime('%s', 'now'), ?12)",
        )?;
        for entry in entries {
            let judgment = entry
                .judgment
                .as_ref()
                .map(|j| serde_json::to_string(j).expect("a judgment serialises; this is a bug"));
            statement.execute(params![
                &entry.key.0[..],
                &entry.run.0[..],
                sqlite_integer(entry.row_index),
                entry.status.as_str(),
                entry.response,
                judgment,
                sqlite_integer(entry.prompt_tokens),
                sqlite_integer(entry.completion_tokens),
                sqlite_integer(entry.latency_ms),
                entry.attempts,
                entry.error,
                entry.cost,
            ])?;
        }
    }
    transaction.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Rating;
    use proptest::prelude::*;

    fn message(content: &str) -> Vec<ChatMessage> {
        vec![ChatMessage {
            role: "user".into(),
            content: content.into(),
        }]
    }

    fn judgment() -> Judgment {
        let rating = |score| Rating {
            score,
            rationale: "why".into(),
            distribution: None,
        };
        Judgment::Ratings {
            response_a: rating(4.0),
            response_b: rating(2.0),
        }
    }

    fn entry(key: RequestKey, status: EntryStatus) -> Entry {
        Entry {
            key,
            run: RequestKey([1; 32]),
            row_index: 3,
            status,
            response: Some("{}".into()),
            judgment: (status == EntryStatus::Ok).then(judgment),
            prompt_tokens: 10,
            completion_tokens: 5,
            cost: 0.0,
            latency_ms: 7,
            attempts: 1,
            error: None,
        }
    }

    #[tokio::test]
    async fn answers_survive_reopening_and_failures_are_not_reused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("journal.sqlite");
        let fingerprint = serde_json::json!({"model": "m"});
        let good = RequestKey::new(&fingerprint, "t", &message("a"));
        let bad = RequestKey::new(&fingerprint, "t", &message("b"));
        {
            let journal = Journal::open(&path).unwrap();
            journal.record(entry(good, EntryStatus::Ok)).await.unwrap();
            journal
                .record(entry(bad, EntryStatus::Failed))
                .await
                .unwrap();
        }
        let journal = Journal::open(&path).unwrap();
        let stored = journal.lookup(good).await.unwrap();
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
        };
        assert_eq!(stored, Some(Stored::Judged(judgment(), usage)));
        assert_eq!(journal.lookup(bad).await.unwrap(), None);
        assert!(!journal.is_empty().await.unwrap());
        assert_eq!(journal.spent().await.unwrap(), 0.0);
    }

    #[tokio::test]
    async fn costs_add_up_and_old_journals_get_the_column() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("journal.sqlite");
        {
            // A journal as rejudge wrote it before costs were recorded.
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(
                    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                     INSERT INTO meta VALUES ('format_version', '1');
                     CREATE TABLE requests (key BLOB PRIMARY KEY, run BLOB NOT NULL, row_index INTEGER NOT NULL,
                        status TEXT NOT NULL, response TEXT, judgment TEXT, prompt_tokens INTEGER NOT NULL,
                        completion_tokens INTEGER NOT NULL, latency_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,
                        error TEXT, recorded_at INTEGER NOT NULL) WITHOUT ROWID;",
                )
                .unwrap();
        }
        let journal = Journal::open(&path).unwrap();
        for (byte, cost) in [(1u8, 0.25), (2, 0.5)] {
            let mut entry = entry(RequestKey([byte; 32]), EntryStatus::Ok);
            entry.cost = cost;
            journal.record(entry).await.unwrap();
        }
        assert_eq!(journal.spent().await.unwrap(), 0.75);
    }

    #[tokio::test]
    async fn another_format_version_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("journal.sqlite");
        drop(Journal::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        connection
            .execute(
                "UPDATE meta SET value = '0' WHERE name = 'format_version'",
                [],
            )
            .unwrap();
        drop(connection);
        let error = Journal::open(&path).err().expect("refused").to_string();
        assert!(error.contains("format version 0"), "{error}");
        assert!(error.contains("hint:"), "{error}");
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_an_error() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("journal.sqlite");
        std::fs::write(
            &path,
            "not a database, just text that is long enough to have a header",
        )
        .unwrap();
        let error = Journal::open(&path).err().expect("refused").to_string();
        assert!(
            error.starts_with(&format!("journal {}", path.display())),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn keys_change_with_every_input(a in ".{0,40}", b in ".{0,40}") {
            let fingerprint = serde_json::json!({"model": "m", "temperature": 0.0});
            let key = RequestKey::new(&fingerprint, "t", &message(&a));
            prop_assert_eq!(key, RequestKey::new(&fingerprint, "t", &message(&a)));
            if a != b {
                prop_assert_ne!(key, RequestKey::new(&fingerprint, "t", &message(&b)));
            }
            prop_assert_ne!(key, RequestKey::new(&fingerprint, "u", &message(&a)));
            let other = serde_json::json!({"model": "m", "temperature": 0.5});
            prop_assert_ne!(key, RequestKey::new(&other, "t", &message(&a)));
        }
    }
}
