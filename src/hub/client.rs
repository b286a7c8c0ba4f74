//! HTTP to the Hub. The token goes only to the endpoint's origin; redirects are followed here,
//! hop by hop, so that one leading to another origin (the CDN) loses the token; error statuses
//! become [`HubError`]s carrying the Hub's message, scrubbed of secrets and cut short; answers
//! are read with a size limit, so nothing a server sends can exhaust memory.

use super::error::{Access, status_hint};
use super::{HubError, HubOptions, HubToken, Target};
use crate::secrets::Redactor;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Redirects followed for one request at most.
const MAX_REDIRECTS: usize = 10;
/// The largest JSON answer read (a page of a tree listing is far smaller).
const MAX_JSON_BYTES: usize = 64 << 20;
/// The most of an error body read.
const MAX_ERROR_BYTES: usize = 16 << 10;
/// The most of the Hub's words an error message keeps.
const EXCERPT_CHARS: usize = 300;
/// Tries of a request that may be repeated.
const ATTEMPTS: u32 = 3;
/// The pause before the second try; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// A client for one endpoint and one token.
pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: Url,
    token: Option<HubToken>,
    redactor: Redactor,
}

impl Client {
    /// A client for `options`' endpoint and token.
    pub(crate) fn new(options: &HubOptions) -> Result<Self, HubError> {
        let bad_endpoint = |problem: String| HubError::Address {
            address: options.endpoint().to_owned(),
            problem,
            hint: "HF_ENDPOINT is the Hub's address, such as https://huggingface.co",
        };
        let endpoint = Url::parse(options.endpoint()).map_err(|e| bad_endpoint(e.to_string()))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(bad_endpoint("not an http(s) address".into()));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rejudge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| bad_endpoint(format!("no HTTP client: {e}")))?;
        let redactor = Redactor::new(options.token.iter().map(|t| t.expose().to_owned()));
        Ok(Client {
            http,
            endpoint,
            token: options.token.clone(),
            redactor,
        })
    }

    /// Whether a token will be sent to the Hub.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The address of `path` (which starts with `/`) on the Hub.
    pub(crate) fn url(&self, target: &Target, path: &str) -> Result<Url, HubError> {
        let text = format!("{}{path}", self.endpoint.as_str().trim_end_matches('/'));
        Url::parse(&text).map_err(|e| HubError::protocol(target, format!("bad URL {text}: {e}")))
    }

    /// Whether `url` is on the Hub itself (the only place the token goes).
    pub(crate) fn on_hub(&self, url: &Url) -> bool {
        url.origin() == self.endpoint.origin()
    }

    /// A request to `url`, carrying the token only when `url` is on the Hub.
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let on_hub = self.on_hub(&url);
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) if on_hub => builder.bearer_auth(token.expose()),
            _ => builder,
        }
    }

    /// A request that never carries the token: for the pre-signed storage URLs of uploads.
    pub(crate) fn request_without_token(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends a request that may be repeated (every request but a commit): a failure to connect,
    /// a server error or a rate limit is tried again, twice at most, after a pause.
    pub(crate) async fn send(
        &self,
        target: &Target,
        builder: RequestBuilder,
    ) -> Result<Response, HubError> {
        let mut builder = builder;
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            let again = (attempt < ATTEMPTS).then(|| builder.try_clone()).flatten();
            let result = self.send_once(target, builder).await;
            let transient = match &result {
                Ok(response) => {
                    let status = response.status();
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                }
                Err(error) => matches!(error, HubError::Network { .. }),
            };
            match again {
                Some(next) if transient => {
                    builder = next;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    /// Sends a request once; a failure to connect or a broken answer becomes
    /// [`HubError::Network`].
    pub(crate) async fn send_once(
        &self,
        target: &Target,
        builder: RequestBuilder,
    ) -> Result<Response, HubError> {
        let request = builder
            .build()
            .map_err(|e| HubError::protocol(target, self.scrub(&e.without_url().to_string())))?;
        let url = shown(request.url());
        self.http
            .execute(request)
            .await
            .map_err(|error| self.network(target, &url, error))
    }

    /// The error for a transport failure, without the URL's query (pre-signed URLs carry
    /// signatures there).
    pub(crate) fn network(&self, target: &Target, url: &str, error: reqwest::Error) -> HubError {
        HubError::Network {
            target: target.clone(),
            url: url.to_owned(),
            message: self.scrub(&error_chain(&error.without_url())),
        }
    }

    /// GET or HEAD `url` with `headers`, following redirects: the token is sent to the hops on
    /// the Hub only, and with `stay_on_hub` a redirect off the Hub is not followed but answered
    /// (a HEAD wants the Hub's own headers, not the CDN's).
    pub(crate) async fn fetch(
        &self,
        target: &Target,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        stay_on_hub: bool,
    ) -> Result<Response, HubError> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let builder = self
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            let response = self.send(target, builder).await?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let Some(location) = header(&response, LOCATION.as_str()) else {
                return Ok(response);
            };
            let next = url.join(&location).map_err(|e| {
                HubError::protocol(target, format!("a redirect to {location:?}: {e}"))
            })?;
            if stay_on_hub && !self.on_hub(&next) {
                return Ok(response);
            }
            url = next;
        }
        Err(HubError::protocol(target, "too many redirects"))
    }

    /// The answer when its status is a success; else the error it stands for.
    pub(crate) async fn check(
        &self,
        target: &Target,
        response: Response,
        access: Access,
    ) -> Result<Response, HubError> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.status_error(target, response, access).await)
        }
    }

    /// The error an answer with an error status stands for: the Hub's `X-Error-Message` (or
    /// its JSON `error`, or the start of its body), and a hint.
    pub(crate) async fn status_error(
        &self,
        target: &Target,
        response: Response,
        access: Access,
    ) -> HubError {
        let status = response.status().as_u16();
        let code = header(&response, "x-error-code");
        let from_header = header(&response, "x-error-message");
        let body = read_limited(response, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let from_body = || {
            let text = String::from_utf8_lossy(&body);
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|value| value.get("error")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| text.into_owned())
        };
        let message = from_header.unwrap_or_else(from_body);
        HubError::Status {
            target: target.clone(),
            status,
            message: self.excerpt(&message),
            hint: status_hint(status, code.as_deref(), self.has_token(), access),
        }
    }

    /// Reads a JSON answer whose status was checked.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        target: &Target,
        response: Response,
    ) -> Result<T, HubError> {
        let url = shown(response.url());
        let bytes = read_limited(response, MAX_JSON_BYTES)
            .await
            .map_err(|error| match error {
                Limited::Transport(error) => self.network(target, &url, error),
                Limited::TooLarge => HubError::protocol(
                    target,
                    format!("the answer is larger than {MAX_JSON_BYTES} bytes"),
                ),
            })?;
        serde_json::from_slice(&bytes).map_err(|error| {
            HubError::protocol(
                target,
                format!(
                    "the answer is not the JSON expected ({error}): {}",
                    self.excerpt(&String::from_utf8_lossy(&bytes))
                ),
            )
        })
    }

    /// Text with the token and any credentials scrubbed.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.redactor.scrub(text).into_owned()
    }

    /// The start of a server's words, scrubbed, on one line.
    pub(crate) fn excerpt(&self, text: &str) -> String {
        let scrubbed = self.scrub(text);
        let line: String = scrubbed
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if line.chars().count() > EXCERPT_CHARS {
            format!(
                "{}...",
                line.chars().take(EXCERPT_CHARS).collect::<String>()
            )
        } else {
            line
        }
    }
}

/// Why a body could not be read whole.
pub(crate) enum Limited {
    /// The connection broke.
    Transport(reqwest::Error),
    /// The body is larger than allowed.
    TooLarge,
}

/// Reads a body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(mut response: Response, limit: usize) -> Result<Vec<u8>, Limited> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Limited::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(Limited::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A header's value as trimmed text; `None` when absent, empty or not text.
pub(crate) fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// A URL as errors show it: no credentials, no query.
pub(crate) fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// An error with its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

/// One path segment, percent-encoded: everything but letters, digits and `-._~`.
pub(crate) fn encode_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A path in a repository, each segment percent-encoded, the slashes kept.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: &str, token: Option<&str>) -> Client {
        Client::new(&HubOptions {
            token: token.map(|t| HubToken::new(t.into())),
            offline: false,
            cache: std::path::PathBuf::from("/nonexistent"),
            endpoint: Some(endpoint.into()),
        })
        .unwrap()
    }

    #[test]
    fn the_token_goes_to_the_endpoint_origin_only() {
        let client = client("http://127.0.0.1:8000/", Some("hf_secret_token_value"));
        let carries = |url: &str| {
            let request = client
                .request(Method::GET, Url::parse(url).unwrap())
                .build()
                .unwrap();
            request.headers().contains_key("authorization")
        };
        assert!(carries("http://127.0.0.1:8000/api/datasets/a/b"));
        assert!(
            !carries("http://localhost:8000/_fake/cdn/abc"),
            "another host"
        );
        assert!(!carries("http://127.0.0.1:8001/api"), "another port");
        assert!(!carries("https://127.0.0.1:8000/api"), "another scheme");
        assert!(!carries("https://cdn-lfs.hf.co/repos/x"));
    }

    #[test]
    fn excerpts_are_short_single_lines_without_secrets() {
        let client = client("https://huggingface.co", Some("hf_secret_token_value"));
        let text = format!(
            "bad token hf_secret_token_value\n\nAuthorization: Bearer abcdefghijkl {}",
            "x".repeat(1000)
        );
        let excerpt = client.excerpt(&text);
        assert!(!excerpt.contains("hf_secret"), "{excerpt}");
        assert!(!excerpt.contains("abcdefghijkl"), "{excerpt}");
        assert!(!excerpt.contains('\n'));
        assert!(excerpt.ends_with("...") && excerpt.chars().count() == EXCERPT_CHARS + 3);
    }

    #[test]
    fn segments_and_paths_are_encoded() {
        assert_eq!(
            encode_segment("refs/convert/parquet"),
            "refs%2Fconvert%2Fparquet"
        );
        assert_eq!(encode_path("data/a b#1.parquet"), "data/a%20b%231.parquet");
        let url = Url::parse("https://user:pass@host/p?X-Amz-Signature=s#f").unwrap();
        assert_eq!(shown(&url), "https://host/p");
    }

    #[test]
    fn a_bad_endpoint_is_refused() {
        for endpoint in ["not a url", "ftp://host", "file:///tmp"] {
            let options = HubOptions {
                token: None,
                offline: false,
                cache: std::path::PathBuf::new(),
                endpoint: Some(endpoint.into()),
            };
            assert!(Client::new(&options).is_err(), "{endpoint}");
        }
    }
}
