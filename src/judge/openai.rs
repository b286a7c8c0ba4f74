//! A judge behind any OpenAI-compatible Chat Completions endpoint: vLLM, TGI, llama.cpp's
//! server, Ollama, the Hugging Face router, OpenAI. One call is one attempt; retries belong to
//! [`Retrying`](super::Retrying).
//!
//! Structured output is asked for with `response_format` (`json_schema`); a server that rejects
//! it is asked again without within the same attempt, and the backend remembers. Log-probability
//! scoring uses `logprobs`/`top_logprobs`; a server that rejects those fails the request with its
//! message.

use super::error::JudgeError;
use super::{
    Judge, JudgeRequest, Probabilities, Reply, Sampling, Scoring, Usage, read_probabilities,
};
use crate::prompt::{Mode, judgment_schema};
use crate::secrets::Redactor;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

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

    /// The key itself, for sending and for scrubbing it out of text that will be stored.
    pub fn expose(&self) -> &str {
        &self.0
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
    /// Whether to ask for `response_format` `json_schema` at all.
    pub structured_output: bool,
    /// The largest response body read; a longer one fails the request.
    pub max_response_bytes: usize,
}

/// The OpenAI-compatible judge.
pub struct OpenAiJudge {
    client: reqwest::Client,
    config: OpenAiConfig,
    url: String,
    shown_url: String,
    structured_output: AtomicBool,
    redactor: Redactor,
}

impl OpenAiJudge {
    /// Builds the client. Fails only if the TLS stack cannot start.
    pub fn new(config: OpenAiConfig) -> Result<Self, JudgeError> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let shown_url = without_credentials(&url);
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|error| JudgeError::Request {
                url: shown_url.clone(),
                source: Arc::new(error),
            })?;
        let secrets = config.api_key.iter().map(|key| key.expose().to_owned());
        let redactor = Redactor::new(secrets).with_url_credentials(&config.base_url);
        Ok(OpenAiJudge {
            client,
            structured_output: AtomicBool::new(config.structured_output),
            config,
            url,
            shown_url,
            redactor,
        })
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

    /// Sends one request and reads the answer.
    async fn send(&self, request: &JudgeRequest, structured: bool) -> Result<Reply, JudgeError> {
        // The pairwise answer starts with its verdict token, which no JSON schema allows.
        let structured = structured && self.config.sampling.mode == Mode::Rating;
        let mut call = self
            .client
            .post(&self.url)
            .json(&self.body(request, structured));
        if let Some(key) = &self.config.api_key {
            call = call.bearer_auth(key.expose());
        }
        let response = call.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after")
            .and_then(|value| super::parse_retry_after(&value, SystemTime::now()));
        let request_id = header("x-request-id").or_else(|| header("request-id"));
        let pause = exhausted_for(&header);
        let body = self.read_body(response).await?;
        if !(200..300).contains(&status) {
            return Err(JudgeError::Status {
                status,
                url: self.shown_url.clone(),
                request_id: request_id.map(|id| self.redactor.scrub(&id).into_owned()),
                body: self.redactor.scrub(&server_words(&body)).into_owned(),
                retry_after: retry_after.or(pause),
            });
        }
        let mut reply = self.completion(&body, structured)?;
        reply.pause = pause;
        Ok(reply)
    }

    /// A 2xx body as a reply, scrubbed of secrets; a refusal or a body that is not a chat
    /// completion is an error.
    fn completion(&self, body: &[u8], structured: bool) -> Result<Reply, JudgeError> {
        let mut reply =
            reply_of(body, structured, self.config.sampling.mode).map_err(|error| match error {
                Unreadable::Refusal(text) => JudgeError::Refusal {
                    text: self.redactor.scrub(&text).into_owned(),
                },
                Unreadable::Malformed => JudgeError::Malformed {
                    url: self.shown_url.clone(),
                    body: self.redactor.scrub(&excerpt(body)).into_owned(),
                },
            })?;
        // A server can echo the request into the completion itself.
        if let std::borrow::Cow::Owned(clean) = self.redactor.scrub(&reply.text) {
            reply.text = clean;
        }
        Ok(reply)
    }

    /// Whether requests carry the judgment's JSON schema (`response_format`).
    fn structured(&self) -> bool {
        self.structured_output.load(Ordering::Relaxed) && self.config.sampling.mode == Mode::Rating
    }

    /// The body of the request this judge would send for `request`, for a batch file.
    pub fn request_body(&self, request: &JudgeRequest) -> Value {
        self.body(request, self.structured())
    }

    /// Reads one answer of a batch output file: its HTTP status and body.
    pub fn read_batch_answer(&self, status: u16, body: &[u8]) -> Result<Reply, JudgeError> {
        if !(200..300).contains(&status) {
            return Err(JudgeError::Status {
                status,
                url: "batch".to_owned(),
                request_id: None,
                body: self.redactor.scrub(&server_words(body)).into_owned(),
                retry_after: None,
            });
        }
        self.completion(body, self.structured())
    }

    /// A redactor for the secrets this judge knows.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The body, up to the configured size; a larger one is refused without reading it whole.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, JudgeError> {
        let limit = self.config.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(JudgeError::TooLarge {
                    url: self.shown_url.clone(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, error: reqwest::Error) -> JudgeError {
        // reqwest's message would carry the full address, credentials included.
        let error = error.without_url();
        let url = self.shown_url.clone();
        let chain = super::error::describe(&error).to_ascii_lowercase();
        if error.is_timeout() {
            JudgeError::Timeout {
                url,
                seconds: self.config.timeout.as_secs_f64(),
            }
        } else if chain.contains("certificate")
            || chain.contains("tls")
            || chain.contains("handshake")
        {
            JudgeError::Tls {
                url,
                source: Arc::new(error),
            }
        } else if error.is_builder() {
            JudgeError::Request {
                url,
                source: Arc::new(error),
            }
        } else if error.is_connect() {
            let refused = chain.contains("refused");
            JudgeError::Connect {
                url,
                refused,
                source: Arc::new(error),
            }
        } else {
            JudgeError::Transport {
                url,
                source: Arc::new(error),
            }
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

    async fn attempt(&self, request: &JudgeRequest) -> Result<Reply, JudgeError> {
        let structured = self.structured_output.load(Ordering::Relaxed);
        match self.send(request, structured).await {
            Err(JudgeError::Status {
                status: 400 | 422,
                body,
                ..
            }) if structured && mentions_response_format(&body) => {
                // The server does not do structured output: plain text for this and every later
                // request. Part of the same attempt: nothing failed, a capability was learnt.
                self.structured_output.store(false, Ordering::Relaxed);
                self.send(request, false).await
            }
            other => other,
        }
    }
}

/// An address as it may be shown and stored: no user name, password or query string.
pub fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let separator = if path.is_empty() && !rest.contains('/') {
        ""
    } else {
        "/"
    };
    if scheme.is_empty() {
        format!("{host}{separator}{path}")
    } else {
        format!("{scheme}://{host}{separator}{path}")
    }
}

/// How long nothing more may be sent, when the rate-limit headers OpenAI and many proxies send
/// (`x-ratelimit-remaining-requests`/`-tokens` and `x-ratelimit-reset-requests`/`-tokens`) say a
/// limit is used up.
fn exhausted_for(header: &dyn Fn(&str) -> Option<String>) -> Option<Duration> {
    ["requests", "tokens"]
        .iter()
        .filter(|kind| {
            header(&format!("x-ratelimit-remaining-{kind}"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|remaining| remaining <= 0.0)
        })
        .filter_map(|kind| header(&format!("x-ratelimit-reset-{kind}")))
        .filter_map(|value| super::limit::parse_reset(&value))
        .max()
}

fn mentions_response_format(body: &str) -> bool {
    let text = body.to_ascii_lowercase();
    ["response_format", "json_schema", "structured", "grammar"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// Why a 2xx body gave no text to parse.
enum Unreadable {
    /// The model declined, with its words.
    Refusal(String),
    /// Not a chat completion.
    Malformed,
}

fn reply_of(body: &[u8], structured: bool, mode: Mode) -> Result<Reply, Unreadable> {
    let (text, usage, probabilities) = completion_of(body, mode)?;
    Ok(Reply {
        text,
        usage,
        probabilities,
        structured,
        pause: None,
        attempts: 1,
        latency: Duration::ZERO,
    })
}

/// The text, usage and log-probability readings of a chat completion.
type Completion = (String, Usage, Option<Probabilities>);

fn completion_of(body: &[u8], mode: Mode) -> Result<Completion, Unreadable> {
    let value: Value = serde_json::from_slice(body).map_err(|_| Unreadable::Malformed)?;
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or(Unreadable::Malformed)?;
    let message = choice.get("message").ok_or(Unreadable::Malformed)?;
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        _ => {
            let refusal = message.get("refusal").and_then(Value::as_str);
            return Err(match refusal {
                Some(text) => Unreadable::Refusal(text.to_owned()),
                None => Unreadable::Malformed,
            });
        }
    };
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
    let probabilities = choice
        .get("logprobs")
        .and_then(|l| l.get("content"))
        .and_then(Value::as_array)
        .and_then(|tokens| read_probabilities(mode, tokens.iter().map(token_candidates)));
    Ok((text, usage, probabilities))
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

/// What the server said: the message of a JSON error body (`{"error": {"message": ...}}`,
/// `{"error": "..."}`, `{"message": ...}`, `{"detail": ...}`), else an excerpt of the body.
fn server_words(body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            let error = value.get("error");
            [
                error.and_then(|e| e.get("message")),
                error,
                value.get("message"),
                value.get("detail"),
            ]
            .into_iter()
            .flatten()
            .find_map(|candidate| candidate.as_str().map(str::to_owned))
        });
    match message {
        Some(message) => excerpt(message.as_bytes()),
        None => excerpt(body),
    }
}

fn excerpt(body: &[u8]) -> String {
    // Enough bytes for the excerpt even in four-byte characters; a huge body is never copied.
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT * 4)]);
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
        let Ok((text, usage, probabilities)) =
            completion_of(body.to_string().as_bytes(), Mode::Rating)
        else {
            panic!("a completion")
        };
        assert!(text.starts_with('{'));
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 100,
                completion_tokens: 20
            }
        );
        let Some(Probabilities::Scores([a, b])) = probabilities else {
            panic!("score distributions")
        };
        assert!(a[3] > 0.8 && b[1] > 0.6);
    }

    #[test]
    fn malformed_bodies_are_not_replies() {
        assert!(matches!(
            completion_of(b"<html>oops</html>", Mode::Rating),
            Err(Unreadable::Malformed)
        ));
        assert!(matches!(
            completion_of(b"{\"choices\": []}", Mode::Rating),
            Err(Unreadable::Malformed)
        ));
        let refusal =
            br#"{"choices": [{"message": {"content": null, "refusal": "I cannot help"}}]}"#;
        assert!(
            matches!(completion_of(refusal, Mode::Rating), Err(Unreadable::Refusal(text)) if text == "I cannot help")
        );
    }

    #[test]
    fn addresses_lose_their_credentials() {
        assert_eq!(
            without_credentials("http://user:pass@host:8080/v1/chat/completions?key=s"),
            "http://host:8080/v1/chat/completions"
        );
        assert_eq!(
            without_credentials("https://router.example/v1"),
            "https://router.example/v1"
        );
        assert_eq!(without_credentials("http://host"), "http://host");
    }

    #[test]
    fn keys_are_redacted() {
        let key = ApiKey::new("hf_secret".into());
        assert!(!format!("{key:?}").contains("hf_secret"));
    }
}
