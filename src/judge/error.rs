//! What can go wrong with one attempt, and a pure classification of it: worth trying again,
//! this row's problem, or a setup problem that will fail every row the same way.

use std::sync::Arc;
use std::time::Duration;

/// The failure of one attempt to get a judgment.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JudgeError {
    /// The server answered with an error status.
    #[error("HTTP {status} from {url}{}: {body}", request_id.as_ref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
    Status {
        /// The HTTP status.
        status: u16,
        /// The address called, without credentials.
        url: String,
        /// The server's request id, when it sent one.
        request_id: Option<String>,
        /// A short excerpt of the body.
        body: String,
        /// How long the server asked us to wait, when it did.
        retry_after: Option<Duration>,
    },
    /// No answer within the request timeout.
    #[error("timed out: no answer from {url} within {seconds}s")]
    Timeout {
        /// The address called.
        url: String,
        /// The timeout.
        seconds: f64,
    },
    /// The connection could not be made.
    #[error("could not connect to {url}")]
    Connect {
        /// The address called.
        url: String,
        /// Whether the host refused it (nothing listens on the port).
        refused: bool,
        /// The transport's error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake with {url} failed")]
    Tls {
        /// The address called.
        url: String,
        /// The transport's error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The request could not be built or sent at all (a malformed address, an unsupported
    /// scheme).
    #[error("cannot send a request to {url}")]
    Request {
        /// The address called.
        url: String,
        /// The transport's error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The connection broke while sending or receiving.
    #[error("the connection to {url} broke")]
    Transport {
        /// The address called.
        url: String,
        /// The transport's error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A 2xx answer that is not a chat completion.
    #[error("malformed answer from {url}: {body}")]
    Malformed {
        /// The address called.
        url: String,
        /// A short excerpt of the body.
        body: String,
    },
    /// The response body was larger than allowed.
    #[error("the answer from {url} exceeds {limit} bytes")]
    TooLarge {
        /// The address called.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The model declined to judge.
    #[error("the judge refused: {text}")]
    Refusal {
        /// The refusal text.
        text: String,
    },
    /// No answer yet, and none will be asked for in this run (a batch run: the request waits
    /// for the next batch).
    #[error("{reason}")]
    Deferred {
        /// What to do about it.
        reason: String,
    },
    /// The in-process judge failed.
    #[error("{message}")]
    Local {
        /// What went wrong.
        message: String,
        /// Whether the judge itself is gone (every later row would fail too).
        stopped: bool,
    },
}

impl JudgeError {
    /// Whether the host refused the connection: nothing listens where the judge should be.
    pub fn is_refused(&self) -> bool {
        matches!(self, JudgeError::Connect { refused: true, .. })
    }

    /// How long the server asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JudgeError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a failure means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Trying again may succeed: rate limits, overload, timeouts, broken connections.
    Transient,
    /// This request will fail the same way again, but other rows may succeed (a prompt too long
    /// for the context, a refusal, a bad request).
    Row,
    /// Every request will fail the same way: wrong key, wrong address, unknown model, TLS.
    Setup,
}

/// Classifies one failure. Pure: no state, no I/O.
pub fn classify(error: &JudgeError) -> Class {
    match error {
        JudgeError::Status { status, body, .. } => classify_status(*status, body),
        JudgeError::Timeout { .. }
        | JudgeError::Connect { .. }
        | JudgeError::Transport { .. }
        | JudgeError::Malformed { .. } => Class::Transient,
        JudgeError::Tls { .. } | JudgeError::Request { .. } => Class::Setup,
        JudgeError::Refusal { .. } | JudgeError::TooLarge { .. } | JudgeError::Deferred { .. } => {
            Class::Row
        }
        JudgeError::Local { stopped, .. } => {
            if *stopped {
                Class::Setup
            } else {
                Class::Row
            }
        }
    }
}

fn classify_status(status: u16, body: &str) -> Class {
    match status {
        408 | 409 | 425 | 429 | 500..=599 => Class::Transient,
        401 | 403 | 404 | 405 => Class::Setup,
        // An unknown model comes back as 400 or 422 from some servers.
        400 | 422 if mentions_unknown_model(body) => Class::Setup,
        _ => Class::Row,
    }
}

fn mentions_unknown_model(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("model")
        && [
            "not found",
            "does not exist",
            "unknown model",
            "no such model",
            "not supported",
        ]
        .iter()
        .any(|phrase| body.contains(phrase))
}

/// What a user can do about a failure that stops a run before or while it fans out.
pub fn hint(error: &JudgeError) -> Option<String> {
    let text = match error {
        JudgeError::Status { status: 401, .. } => {
            "the server refused the API key; --api-key-env names the variable that holds it (by default OPENAI_API_KEY, or HF_TOKEN for Hugging Face hosts)".to_owned()
        }
        JudgeError::Status { status: 403, .. } => {
            "the key is valid but may not use this model or endpoint".to_owned()
        }
        JudgeError::Status { status: 404, url, .. } if !url.contains("/v1/") => {
            "the base URL usually ends in /v1, e.g. http://localhost:8000/v1".to_owned()
        }
        JudgeError::Status { status: 400 | 404 | 422, .. } => {
            "check --model: BASE_URL/models lists the models the server serves".to_owned()
        }
        JudgeError::Connect { refused: true, url, .. } => format!(
            "nothing listens at {url}; is the server running, and on this port?"
        ),
        JudgeError::Tls { .. } => {
            "check the scheme (http:// or https://) and the server's certificate".to_owned()
        }
        JudgeError::Request { .. } => "check --base-url".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// The error with its causes, as one line: the text stored in `failure_reason` and the journal.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> JudgeError {
        JudgeError::Status {
            status,
            url: "http://x/v1/chat/completions".into(),
            request_id: None,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn statuses_are_classified() {
        let table = [
            (429, "", Class::Transient),
            (500, "", Class::Transient),
            (503, "", Class::Transient),
            (408, "", Class::Transient),
            (400, "bad request", Class::Row),
            (413, "too large", Class::Row),
            (422, "", Class::Row),
            (401, "", Class::Setup),
            (403, "", Class::Setup),
            (404, "", Class::Setup),
            (400, "The model `gpt-9` does not exist", Class::Setup),
            (404, "model not found", Class::Setup),
        ];
        for (code, body, expected) in table {
            assert_eq!(classify(&status(code, body)), expected, "{code} {body}");
        }
    }

    #[test]
    fn other_failures_are_classified() {
        let table = [
            (
                JudgeError::Timeout {
                    url: "u".into(),
                    seconds: 1.0,
                },
                Class::Transient,
            ),
            (
                JudgeError::Malformed {
                    url: "u".into(),
                    body: "<html>".into(),
                },
                Class::Transient,
            ),
            (JudgeError::Refusal { text: "no".into() }, Class::Row),
            (
                JudgeError::Local {
                    message: "too long".into(),
                    stopped: false,
                },
                Class::Row,
            ),
            (
                JudgeError::Local {
                    message: "gone".into(),
                    stopped: true,
                },
                Class::Setup,
            ),
        ];
        for (error, expected) in table {
            assert_eq!(classify(&error), expected, "{error}");
        }
    }
}
