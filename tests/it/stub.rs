//! An in-test OpenAI-compatible server for fault injection. It judges by keywords: a response
//! containing "good" scores 5, "bad" scores 1, anything else 3. A [`Fault`] script decides, per
//! request number, whether to answer normally or misbehave.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the stub does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A valid judgment.
    Judge,
    /// This status and body, with an optional Retry-After.
    Status(u16, String, Option<u32>),
    /// A valid judgment after a delay.
    Slow(Duration),
    /// HTTP 200 with a body that is not a chat completion.
    Garbage,
    /// A completion whose text is not a judgment.
    Prose,
    /// This status with the request's headers echoed in the body (and, for 200, in the
    /// completion's text), as a careless proxy might.
    Echo(u16),
    /// This status with a `Retry-After` header of exactly this text.
    RetryAfter(u16, String),
    /// A completion whose text is this many bytes of prose.
    Huge(usize),
    /// A completion refused by the model (`content: null`, `refusal`).
    Refusal(String),
    /// A valid judgment reporting absurd token counts.
    AbsurdUsage,
    /// A completion with this text.
    Text(String),
    /// A valid judgment with these extra response headers.
    JudgeWithHeaders(Vec<(String, String)>),
    /// A pairwise judge of known accuracy and position pull (see [`simulated`]), with
    /// log-probabilities when the request asks for them.
    Simulated { accuracy: f64, pull: f64 },
}

type Script = dyn Fn(usize, &Value) -> Reply + Send + Sync;

pub struct Stub {
    pub url: String,
    requests: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
    headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
    stop: Arc<AtomicBool>,
}

impl Stub {
    /// A stub that always judges.
    pub fn judging() -> Stub {
        Stub::start(|_, _| Reply::Judge)
    }

    pub fn start(script: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port is free");
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let shared = (
            requests.clone(),
            bodies.clone(),
            headers.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.3.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (script, requests, bodies, headers, stop) = (
                    script.clone(),
                    shared.0.clone(),
                    shared.1.clone(),
                    shared.2.clone(),
                    shared.3.clone(),
                );
                std::thread::spawn(move || {
                    serve(stream, &*script, &requests, &bodies, &headers, &stop);
                });
            }
        });
        Stub {
            url,
            requests,
            bodies,
            headers,
            stop,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The JSON bodies received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// The headers of every request received so far (names lower-cased).
    pub fn headers(&self) -> Vec<HashMap<String, String>> {
        self.headers.lock().unwrap().clone()
    }
}

impl Stub {
    /// Stops answering: new connections are refused and open ones close unanswered.
    pub fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(
            self.url
                .trim_start_matches("http://")
                .trim_end_matches("/v1"),
        );
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(
            self.url
                .trim_start_matches("http://")
                .trim_end_matches("/v1"),
        );
    }
}

fn serve(
    stream: TcpStream,
    script: &Script,
    requests: &AtomicUsize,
    bodies: &Mutex<Vec<Value>>,
    all_headers: &Mutex<Vec<HashMap<String, String>>>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if stop.load(Ordering::SeqCst) {
            // Killed: the connection closes without an answer, as a crashed server's would.
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let number = requests.fetch_add(1, Ordering::SeqCst);
        bodies.lock().unwrap().push(body.clone());
        all_headers.lock().unwrap().push(headers.clone());
        let path = request_line.split_whitespace().nth(1).unwrap_or_default();
        let reply = if path.starts_with("/v1/") {
            script(number, &body)
        } else {
            Reply::Status(404, format!("{{\"error\": \"no route for {path}\"}}"), None)
        };
        let (status, extra, text) = match reply {
            Reply::Echo(status) => {
                let echoed = format!("{headers:?}");
                let text = if status == 200 { completion(&echoed) } else { json!({"error": echoed}).to_string() };
                (status, String::new(), text)
            }
            Reply::RetryAfter(status, value) => (status, format!("Retry-After: {value}\r\n"), "{\"error\": \"slow down\"}".into()),
            Reply::Huge(size) => (200, String::new(), completion(&"words ".repeat(size / 6))),
            Reply::Refusal(text) => (200, String::new(), json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": text}, "finish_reason": "stop"}]
            }).to_string()),
            Reply::AbsurdUsage => {
                let mut value: Value = serde_json::from_str(&completion(&judgment(&body))).unwrap();
                value["usage"] = json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX});
                (200, String::new(), value.to_string())
            }
            Reply::Judge => (200, String::new(), answer(&body)),
            Reply::Text(text) => (200, String::new(), completion(&text)),
            Reply::JudgeWithHeaders(headers) => {
                let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
                (200, extra, answer(&body))
            }
            Reply::Simulated { accuracy, pull } => (200, String::new(), simulated(&body, accuracy, pull)),
            Reply::Slow(delay) => {
                std::thread::sleep(delay);
                (200, String::new(), answer(&body))
            }
            Reply::Status(status, text, retry_after) => {
                let extra = retry_after
                    .map(|s| format!("Retry-After: {s}\r\n"))
                    .unwrap_or_default();
                (status, extra, text)
            }
            Reply::Garbage => (
                200,
                String::new(),
                "<html>upstream hiccup</html>".to_owned(),
            ),
            Reply::Prose => (
                200,
                String::new(),
                completion("I think the first one is nicer, really."),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The keyword judge's answer in the protocol the request asks for: a rating as JSON, or a
/// pairwise verdict ("A", "B" or "tie" on the first line) with its log-probabilities when asked.
fn answer(body: &Value) -> String {
    if !is_pairwise(body) {
        return completion(&judgment(body));
    }
    let user = user_message(body);
    let (a, b) = (
        score(&section(&user, "response_a")),
        score(&section(&user, "response_b")),
    );
    let verdict = match a.cmp(&b) {
        std::cmp::Ordering::Greater => "A",
        std::cmp::Ordering::Less => "B",
        std::cmp::Ordering::Equal => "tie",
    };
    let certain = match verdict {
        "A" => [0.98, 0.01, 0.01],
        "B" => [0.01, 0.01, 0.98],
        _ => [0.01, 0.98, 0.01],
    };
    pairwise_completion(body, verdict, certain)
}

fn is_pairwise(body: &Value) -> bool {
    body["messages"].as_array().is_some_and(|messages| {
        messages.iter().any(|m| {
            m["content"]
                .as_str()
                .unwrap_or_default()
                .contains("Write A, B or tie")
        })
    })
}

/// A pairwise completion whose first token is `verdict`, with `probabilities` (A, tie, B) as its
/// top log-probabilities when the request asks for log-probabilities.
fn pairwise_completion(body: &Value, verdict: &str, probabilities: [f64; 3]) -> String {
    let mut value: Value =
        serde_json::from_str(&completion(&format!("{verdict}\nstub reason"))).unwrap();
    if body["logprobs"] == json!(true) {
        let top: Vec<Value> = ["A", "tie", "B"]
            .iter()
            .zip(probabilities)
            .filter(|(_, p)| *p > 0.0)
            .map(|(token, p)| json!({"token": token, "logprob": p.ln()}))
            .collect();
        value["choices"][0]["logprobs"] = json!({"content": [
            {"token": verdict, "logprob": 0.0, "top_logprobs": top},
            {"token": "\n", "logprob": 0.0, "top_logprobs": []}
        ]});
    }
    value.to_string()
}

/// A uniform number in [0, 1) from a text and a salt: the same text always gives the same
/// number (FNV-1a).
pub fn uniform(text: &str, salt: u64) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the simulated judge knows the answer to `prompt`: a share `accuracy` of prompts.
pub fn knows(prompt: &str, accuracy: f64) -> bool {
    uniform(prompt, 1) < accuracy
}

/// The simulated judge's probability that the good response is better, before any position
/// pull: far from one half when it knows the answer, on the wrong side when it does not.
pub fn belief(prompt: &str, accuracy: f64) -> f64 {
    let strength = uniform(prompt, 2);
    if knows(prompt, accuracy) {
        0.55 + 0.45 * strength
    } else {
        0.45 - 0.25 * strength
    }
}

/// A pairwise judge of known accuracy with a pull toward the response shown first: the
/// probability that A is better is `(1 - pull) * belief(A is better) + pull`. Both orders
/// averaged, the pull cancels: `(1 - pull) * (2 * belief - 1)` in favour of the good response.
fn simulated(body: &Value, accuracy: f64, pull: f64) -> String {
    let user = user_message(body);
    let prompt = section(&user, "last_user_message");
    let good_first = section(&user, "response_a").contains("good");
    let belief = belief(prompt.trim(), accuracy);
    let a_better = if good_first { belief } else { 1.0 - belief };
    let a = (1.0 - pull) * a_better + pull;
    let verdict = if a > 0.5 { "A" } else { "B" };
    pairwise_completion(body, verdict, [a, 0.0, 1.0 - a])
}

fn user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|messages| {
            messages.iter().find(|m| {
                m["role"] == "user"
                    && m["content"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("<response_a_")
            })
        })
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn completion(content: &str) -> String {
    json!({
        "id": "stub",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
    .to_string()
}

/// Scores the two responses of the user message that shows them, by keyword.
pub fn judgment(body: &Value) -> String {
    let user = user_message(body);
    let a = section(&user, "response_a");
    let b = section(&user, "response_b");
    json!({
        "response_a": {"rationale": "stub", "score": score(&a)},
        "response_b": {"rationale": "stub", "score": score(&b)}
    })
    .to_string()
}

/// The text of a tagged block: from `<NAME_KEY>` to `</NAME_KEY>`.
pub fn section(text: &str, name: &str) -> String {
    let Some(start) = text.find(&format!("<{name}_")) else {
        return String::new();
    };
    let rest = &text[start + 1..];
    let tag_end = rest.find('>').unwrap_or(0);
    let tag = &rest[..tag_end];
    let body = &rest[tag_end + 1..];
    let end = body.find(&format!("</{tag}>")).unwrap_or(body.len());
    body[..end].to_lowercase()
}

fn score(response: &str) -> u8 {
    if response.contains("good") {
        5
    } else if response.contains("bad") {
        1
    } else {
        3
    }
}
