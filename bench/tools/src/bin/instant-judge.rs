//! An OpenAI-compatible server that answers every chat completion at once with a valid judgment,
//! so that a benchmark measures the client, never the judge.
//!
//! Requests with `response_format` get rejudge's JSON shape; others get UltraFeedback's text
//! format ("#### Output for Text N / Rating / Rationale"), so a peer's parser succeeds too.
//! Usage: `instant-judge [--port N] [--record FILE] [--latency-ms MS]`; prints the bound port on
//! stdout. `--latency-ms` waits that long before each answer, as a slow server would, without
//! using the CPU meanwhile.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

const JSON_ANSWER: &str = r#"{\"response_a\": {\"rationale\": \"Accurate and complete.\", \"score\": 4}, \"response_b\": {\"rationale\": \"Misses part of the question.\", \"score\": 2}}"#;
const TEXT_ANSWER: &str = r"#### Output for Text 1\nRating: 4\nRationale: Accurate and complete.\n\n#### Output for Text 2\nRating: 2\nRationale: Misses part of the question.";

fn main() {
    let mut port = 0u16;
    let mut record: Option<String> = None;
    let mut latency = Duration::ZERO;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--port" => {
                port = arguments
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("--port N")
            }
            "--record" => record = arguments.next(),
            "--latency-ms" => {
                latency = Duration::from_millis(
                    arguments
                        .next()
                        .and_then(|ms| ms.parse().ok())
                        .expect("--latency-ms MS"),
                );
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the port is free");
        println!("{}", listener.local_addr().unwrap().port());
        let record = match record {
            Some(path) => Some(Arc::new(Mutex::new(
                tokio::fs::File::create(path).await.unwrap(),
            ))),
            None => None,
        };
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, record.clone(), latency));
        }
    });
}

async fn serve(stream: TcpStream, record: Option<Arc<Mutex<tokio::fs::File>>>, latency: Duration) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        if let Some(file) = &record {
            let mut file = file.lock().await;
            let _ = file.write_all(&body).await;
            let _ = file.write_all(b"\n").await;
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let structured = memchr(b"response_format", &body);
        let content = if structured { JSON_ANSWER } else { TEXT_ANSWER };
        let answer = format!(
            r#"{{"id":"instant","object":"chat.completion","created":0,"model":"instant","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{},"completion_tokens":40,"total_tokens":{}}}}}"#,
            length / 4,
            length / 4 + 40
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn memchr(needle: &[u8], haystack: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
