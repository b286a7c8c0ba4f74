//! A judge behind any OpenAI-compatible Chat Completions endpoint: vLLM, TGI, llama.cpp's
//! server, Ollama, the Hugging Face router, OpenAI.
//!
//! Structured output is asked for with `response_format` (`json_schema`); a server that rejects
//! it is asked again without, once, and the backend remembers. Log-probability scoring uses
//! `logprobs`/`top_logprobs`; a server that rejects those fails the request with its message.

use super::retry::{Failure, RetryPolicy, is_transient, parse_retry_after};
use super::{
    Judge, JudgeError, JudgeReply, JudgeRequest, Sampling, Scoring, Usage, score_distributions,
};
use crate::prompt::judgment_schema;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Candidate tokens asked for at each position under log-probability scoring.
const TOP_LOGPROBS: u32 = 10;
/// The most characters of an error body kept in a failure reason.
const BODY_EXCERPT: usize = 300;

/// An API key. Its `Debug` output is redacted, so it cannot leak through logs or errors.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: String) -> Self {
        ApiKey(key)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ApiKey(<redacted>)")
    }
}

/// Settings of the HTTP judge.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API root, ending in `/v1` (for example `http://localhost:8080/v1`).
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    /// The bearer token, if the server needs one.
    pub api_key: Option<ApiKey>,
    /// Sampling settings.
    pub sampling: Sampling,
    /// Time allowed for one attempt.
    pub timeout: Duration,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Whether to ask for `response_format` `json_schema` at all.
    pub structured_output: bool,
}

/// The OpenAI-compatible judge.
pub struct OpenAiJudge {
    client: reqwest::Client,
    config: OpenAiConfig,
    url: String,
    structured_output: AtomicBool,
    retries: AtomicU64,
}

/// How one attempt ended.
enum Attempt {
    Answer(JudgeReply),
    Retry(String, Option<Duration>),
    Fail(String),
    WithoutSchema,
}

impl OpenAiJudge {
    /// Builds the client. Fails only if the TLS stack cannot start.
    pub fn new(config: OpenAiConfig) -> Result<Self, JudgeError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| JudgeError {
                message: format!("starting the HTTP client: {e}"),
                attempts: 0,
            })?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Ok(OpenAiJudge {
            client,
            structured_output: AtomicBool::new(config.structured_output),
            config,
            url,
            retries: AtomicU64::new(0),
        })
    }

    /// Retries made so far over all requests (attempts beyond the first).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn body(&self, request: &JudgeRequest, structured: bool) -> Value {
        let sampling = &self.config.sampling;
        let mut body = json!({
            "model": self.config.model,
            "messages": request.messages,
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_tokens,
        });
        if let Some(seed) = sampling.seed {
            body["seed"] = json!(seed);
        }
        if structured {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "judgment", "strict": true, "schema": judgment_schema()}
            });
        }
        if sampling.scoring == Scoring::Logprobs {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(TOP_LOGPROBS);
        }
        body
    }

    async fn attempt(&self, request: &JudgeRequest, started: Instant, attempts: u32) -> Attempt {
        let structured = self.structured_output.load(Ordering::Relaxed);
        let mut call = self
            .client
            .post(&self.url)
            .json(&self.body(request, structured));
        if let Some(ApiKey(key)) = &self.config.api_key {
            call = call.bearer_auth(key);
        }
        let response = match call.send().await {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return transport_failure(&error),
        };
        if !(200..300).contains(&status) {
            let reason = format!("HTTP {status} from {}: {}", self.url, excerpt(&body));
            if structured && matches!(status, 400 | 422) && mentions_response_format(&body) {
                return Attempt::WithoutSchema;
            }
            let failure = Failure::Status(status);
            return if is_transient(&failure) {
                Attempt::Retry(reason, retry_after)
            } else {
                Attempt::Fail(reason)
            };
        }
        match reply_of(&body) {
            Some((text, usage, distributions)) => Attempt::Answer(JudgeReply {
                text,
                usage,
                distributions,
                attempts,
                latency: started.elapsed(),
            }),
            None => Attempt::Retry(
                format!("malformed answer from {}: {}", self.url, excerpt(&body)),
                None,
            ),
        }
    }
}

impl Judge for OpenAiJudge {
    fn model(&self) -> &str {
        &self.config.model
    }

    fn fingerprint(&self) -> Value {
        json!({"backend": "openai", "model": self.config.model, "sampling": self.config.sampling})
    }

    async fn judge(&self, request: &JudgeRequest) -> Result<JudgeReply, JudgeError> {
        let started = Instant::now();
        let mut attempts = 0;
        let mut schema_dropped = false;
        loop {
            attempts += 1;
            match self.attempt(request, started, attempts).await {
                Attempt::Answer(reply) => return Ok(reply),
                Attempt::Fail(message) => return Err(JudgeError { message, attempts }),
                Attempt::WithoutSchema if !schema_dropped => {
                    // The server does not do structured output: fall back to plain text for
                    // this and every later request, without counting it as a failure.
                    self.structured_output.store(false, Ordering::Relaxed);
                    schema_dropped = true;
                    attempts -= 1;
                }
                Attempt::WithoutSchema => {
                    let message =
                        format!("the server at {} rejected the request (HTTP 400)", self.url);
                    return Err(JudgeError { message, attempts });
                }
                Attempt::Retry(message, _) if !self.config.retry.allows(attempts) => {
                    return Err(JudgeError { message, attempts });
                }
                Attempt::Retry(_, retry_after) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.config.retry.delay(attempts, retry_after)).await;
                }
            }
        }
    }
}

fn transport_failure(error: &reqwest::Error) -> Attempt {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    Attempt::Retry(message, None)
}

fn mentions_response_format(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    ["response_format", "json_schema", "structured", "grammar"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// The text, usage and score distributions of a chat completion.
type Completion = (String, Usage, Option<[[f64; 5]; 2]>);

fn reply_of(body: &[u8]) -> Option<Completion> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let choice = value.get("choices")?.get(0)?;
    let text = choice.get("message")?.get("content")?.as_str()?.to_owned();
    let count = |key: &str| {
        value
            .get("usage")
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let usage = Usage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    };
    let distributions = choice
        .get("logprobs")
        .and_then(|l| l.get("content"))
        .and_then(Value::as_array)
        .and_then(|tokens| score_distributions(tokens.iter().map(token_candidates)));
    Some((text, usage, distributions))
}

fn token_candidates(entry: &Value) -> (String, Vec<(String, f64)>) {
    let token = entry
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let candidates = entry
        .get("top_logprobs")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    Some((
                        c.get("token")?.as_str()?.to_owned(),
                        c.get("logprob")?.as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    (token, candidates)
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.is_empty() {
        "(empty body)".into()
    } else if flat.chars().count() > BODY_EXCERPT {
        format!("{}...", flat.chars().take(BODY_EXCERPT).collect::<String>())
    } else {
        flat.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_completion_with_logprobs() {
        let body = json!({
            "choices": [{
                "message": {"content": "{\"response_a\":{\"score\":4},\"response_b\":{\"score\":2}}"},
                "logprobs": {"content": [
                    {"token": "{\"response_a\":{\"score\":", "top_logprobs": []},
                    {"token": "4", "top_logprobs": [{"token": "4", "logprob": -0.1}, {"token": "5", "logprob": -2.0}]},
                    {"token": "},\"response_b\":{\"score\":", "top_logprobs": []},
                    {"token": "2", "top_logprobs": [{"token": "2", "logprob": -0.3}, {"token": "3", "logprob": -1.5}]},
                    {"token": "}}", "top_logprobs": []}
                ]}
            }],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20}
        });
        let (text, usage, distributions) = reply_of(body.to_string().as_bytes()).unwrap();
        assert!(text.starts_with('{'));
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 100,
                completion_tokens: 20
            }
        );
        let [a, b] = distributions.unwrap();
        assert!(a[3] > 0.8 && b[1] > 0.6);
    }

    #[test]
    fn malformed_bodies_are_not_replies() {
        assert!(reply_of(b"<html>oops</html>").is_none());
        assert!(reply_of(b"{\"choices\": []}").is_none());
    }

    #[test]
    fn keys_are_redacted() {
        let key = ApiKey::new("hf_secret".into());
        assert!(!format!("{key:?}").contains("hf_secret"));
    }
}
