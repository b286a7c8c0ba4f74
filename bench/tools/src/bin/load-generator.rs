//! A bare load generator: replays recorded request bodies against a server at a fixed
//! concurrency and prints rows/s. Its rate is the server's ceiling for those requests.
//! Usage: `load-generator URL BODIES.jsonl CONCURRENCY`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, url, bodies, concurrency] = &arguments[..] else {
        panic!("usage: load-generator URL BODIES.jsonl CONCURRENCY");
    };
    let bodies: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(bodies)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    );
    let concurrency: usize = concurrency.parse().unwrap();
    let rows = bodies.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (seconds, failures) = runtime.block_on(async move {
        let client = reqwest::Client::new();
        let next = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, next, bodies, failures, url) = (
                    client.clone(),
                    next.clone(),
                    bodies.clone(),
                    failures.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(index) else { break };
                        let ok = client
                            .post(format!("{url}/chat/completions"))
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .map(|r| r.status().is_success());
                        if !matches!(ok, Ok(true)) {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        (
            started.elapsed().as_secs_f64(),
            failures.load(Ordering::Relaxed),
        )
    });
    println!(
        "{{\"rows\": {}, \"seconds\": {seconds}, \"rows_per_second\": {}, \"failures\": {failures}}}",
        rows,
        rows as f64 / seconds
    );
}
