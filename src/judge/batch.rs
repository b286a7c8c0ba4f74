//! The batch side of the OpenAI-compatible judge: a client for the Files and Batches endpoints
//! (upload an input file, create a batch, poll it, download its output), and the judge a run
//! uses once the answers are in the journal, which asks nothing.

use super::error::JudgeError;
use super::openai::{ApiKey, without_credentials};
use super::{Judge, JudgeRequest, OpenAiJudge, Reply};
use crate::secrets::Redactor;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A batch's state, as the Batches endpoint reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchState {
    /// The batch id.
    pub id: String,
    /// `validating`, `in_progress`, `finalizing`, `completed`, `failed`, `expired`,
    /// `cancelling` or `cancelled`.
    pub status: String,
    /// The file of answers, once there is one.
    pub output_file_id: Option<String>,
    /// The file of failed requests, if any failed.
    pub error_file_id: Option<String>,
    /// Requests answered so far (completed and failed).
    pub done: u64,
    /// Requests in the batch.
    pub total: u64,
}

impl BatchState {
    /// Whether the batch will not change any more.
    pub fn finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed" | "failed" | "expired" | "cancelled"
        )
    }
}

/// A client for the Files and Batches endpoints under one API root.
pub struct BatchClient {
    client: reqwest::Client,
    base_url: String,
    shown: String,
    api_key: Option<ApiKey>,
    redactor: Redactor,
}

impl BatchClient {
    /// A client for `base_url` (ending in `/v1`).
    pub fn new(
        base_url: &str,
        api_key: Option<ApiKey>,
        timeout: Duration,
    ) -> Result<Self, JudgeError> {
        let shown = without_credentials(base_url);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| JudgeError::Request {
                url: shown.clone(),
                source: Arc::new(error),
            })?;
        let secrets = api_key.iter().map(|key| key.expose().to_owned());
        let redactor = Redactor::new(secrets).with_url_credentials(base_url);
        Ok(BatchClient {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            shown,
            api_key,
            redactor,
        })
    }

    fn authorised(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }

    /// Sends `request` and returns its body, or the server's error.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<Vec<u8>, JudgeError> {
        let url = format!("{}{path}", self.shown);
        let transport = |error: reqwest::Error| JudgeError::Transport {
            url: url.clone(),
            source: Arc::new(error.without_url()),
        };
        let response = self.authorised(request).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body[..body.len().min(1_000)]).into_owned();
            return Err(JudgeError::Status {
                status,
                url,
                request_id: None,
                body: self.redactor.scrub(&text).into_owned(),
                retry_after: None,
            });
        }
        Ok(body)
    }

    fn json(&self, body: &[u8], path: &str) -> Result<Value, JudgeError> {
        serde_json::from_slice(body).map_err(|_| JudgeError::Malformed {
            url: format!("{}{path}", self.shown),
            body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        })
    }

    /// Uploads a batch input file; returns its file id.
    pub async fn upload(&self, path: &Path) -> Result<String, JudgeError> {
        let bytes = fs_err::read(path).map_err(|error| JudgeError::Local {
            message: error.to_string(),
            stopped: true,
        })?;
        let name = path.file_name().map_or_else(
            || "batch.jsonl".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let request = self
            .client
            .post(format!("{}/files", self.base_url))
            .multipart(form);
        let body = self.call(request, "/files").await?;
        let value = self.json(&body, "/files")?;
        string_field(&value, "id").ok_or_else(|| self.malformed("/files", &value))
    }

    /// Creates a batch of chat completions from an uploaded file.
    pub async fn create(&self, input_file_id: &str) -> Result<BatchState, JudgeError> {
        let request =
            self.client
                .post(format!("{}/batches", self.base_url))
                .json(&serde_json::json!({
                    "input_file_id": input_file_id,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                }));
        let body = self.call(request, "/batches").await?;
        let value = self.json(&body, "/batches")?;
        self.state(&value, "/batches")
    }

    /// A batch's current state.
    pub async fn poll(&self, id: &str) -> Result<BatchState, JudgeError> {
        let path = format!("/batches/{id}");
        let request = self.client.get(format!("{}{path}", self.base_url));
        let body = self.call(request, &path).await?;
        let value = self.json(&body, &path)?;
        self.state(&value, &path)
    }

    /// Downloads a file's content to `target`.
    pub async fn download(&self, file_id: &str, target: &Path) -> Result<(), JudgeError> {
        let path = format!("/files/{file_id}/content");
        let request = self.client.get(format!("{}{path}", self.base_url));
        let body = self.call(request, &path).await?;
        fs_err::write(target, body).map_err(|error| JudgeError::Local {
            message: error.to_string(),
            stopped: true,
        })
    }

    fn state(&self, value: &Value, path: &str) -> Result<BatchState, JudgeError> {
        let id = string_field(value, "id").ok_or_else(|| self.malformed(path, value))?;
        let status = string_field(value, "status").ok_or_else(|| self.malformed(path, value))?;
        let counts = &value["request_counts"];
        let count = |key: &str| counts[key].as_u64().unwrap_or(0);
        Ok(BatchState {
            id,
            status,
            output_file_id: string_field(value, "output_file_id"),
            error_file_id: string_field(value, "error_file_id"),
            done: count("completed") + count("failed"),
            total: count("total"),
        })
    }

    fn malformed(&self, path: &str, value: &Value) -> JudgeError {
        let text = value.to_string();
        JudgeError::Malformed {
            url: format!("{}{path}", self.shown),
            body: self
                .redactor
                .scrub(&text[..text.len().min(300)])
                .into_owned(),
        }
    }
}

fn string_field(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The judge of a run whose answers come from batches: the journal answers what it can, and
/// every other request waits for the next batch instead of being sent.
pub struct Deferring {
    judge: OpenAiJudge,
}

impl Deferring {
    /// Defers every request `judge` would send.
    pub fn new(judge: OpenAiJudge) -> Self {
        Deferring { judge }
    }
}

impl Judge for Deferring {
    fn model(&self) -> &str {
        self.judge.model()
    }

    fn fingerprint(&self) -> Value {
        self.judge.fingerprint()
    }

    async fn attempt(&self, _request: &JudgeRequest) -> Result<Reply, JudgeError> {
        Err(JudgeError::Deferred {
            reason: "not answered by a batch yet; export the pending requests again (--batch-export) or run online".into(),
        })
    }
}
