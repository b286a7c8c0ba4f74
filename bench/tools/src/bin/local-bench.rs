//! The in-process judge's speed: prefill and generation tokens/s on one prompt, and rows/s over
//! real rows with batching off (one sequence) and on (several sequences per forward pass).
//! Prints JSON. Usage: `local-bench MODEL.gguf SEED.json THREADS`.

use rejudge::dataset::ColumnOverrides;
use rejudge::judge::local::{LocalConfig, LocalJudge};
use rejudge::judge::{Judge, JudgeRequest, Sampling};
use rejudge::prompt::{ChatMessage, Language, Mode, PromptBuilder};
use rejudge::run::Input;
use std::path::{Path, PathBuf};
use std::time::Instant;

const PREFILL_WORDS: usize = 420;
const ROWS: usize = 8;

fn judge(model: &Path, threads: usize, sequences: usize, max_tokens: u32) -> LocalJudge {
    let sampling = Sampling {
        max_tokens,
        ..Sampling::default()
    };
    LocalJudge::start(LocalConfig {
        model_path: model.to_path_buf(),
        sampling,
        threads,
        context_size: std::env::var("BENCH_CONTEXT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096),
        sequences,
    })
    .expect("the model loads")
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, model, seed_path, threads] = &arguments[..] else {
        panic!("usage: local-bench MODEL.gguf SEED.json THREADS");
    };
    let (model, threads) = (PathBuf::from(model), threads.parse::<usize>().unwrap());
    let seed: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(seed_path).unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // One long user message and nothing shared with other prompts: plain prefill.
    let words: Vec<&str> = seed
        .iter()
        .flat_map(|row| {
            row["chosen"]["value"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
        })
        .take(PREFILL_WORDS)
        .collect();
    let long = JudgeRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: words.join(" "),
        }],
    };
    let (prefill_tokens, prefill_rate, generation_rate) = runtime.block_on(async {
        let short = judge(&model, threads, 1, 1);
        let mut best = f64::MAX;
        let mut tokens = 0;
        for _ in 0..3 {
            let reply = short.attempt(&long).await.unwrap();
            tokens = reply.usage.prompt_tokens;
            best = best.min(reply.latency.as_secs_f64());
        }
        drop(short);
        let full = judge(&model, threads, 1, 256);
        let reply = full.attempt(&long).await.unwrap();
        let generation = (reply.latency.as_secs_f64() - best).max(1e-9);
        (
            tokens,
            tokens as f64 / best,
            (reply.usage.completion_tokens.saturating_sub(1)) as f64 / generation,
        )
    });

    eprintln!(
        "prefill {prefill_tokens} tokens at {prefill_rate:.1} tokens/s; generation {generation_rate:.1} tokens/s"
    );
    // Real rows through the built-in prompt, batching off and on.
    let prompt = PromptBuilder::builtin(Language::En, Mode::Rating);
    let input = Input::open(Path::new(seed_path), &ColumnOverrides::default()).unwrap();
    let requests: Vec<JudgeRequest> = input
        .dataset()
        .batches(None)
        .unwrap()
        .flat_map(|batch| input.columns().conversations(&batch.unwrap()))
        .filter_map(Result::ok)
        .filter(|conversation| {
            conversation.prompt.len() + conversation.chosen.len() + conversation.rejected.len()
                < 6000
        })
        .take(ROWS)
        .map(|conversation| JudgeRequest {
            messages: prompt.render(&conversation, true).unwrap(),
        })
        .collect();
    let mut rows_per_second = Vec::new();
    for sequences in [1usize, 4] {
        let rate = runtime.block_on(async {
            let local = judge(&model, threads, sequences, 512);
            let started = Instant::now();
            let replies = futures_util::future::join_all(
                requests.iter().map(|request| local.attempt(request)),
            )
            .await;
            assert!(replies.iter().all(Result::is_ok));
            requests.len() as f64 / started.elapsed().as_secs_f64()
        });
        rows_per_second.push((sequences, rate));
    }
    println!(
        "{{\"prefill_tokens\": {prefill_tokens}, \"prefill_tokens_per_second\": {prefill_rate:.1}, \"generation_tokens_per_second\": {generation_rate:.1}, \"rows\": {}, \"rows_per_second_batching_off\": {:.3}, \"rows_per_second_batching_on\": {:.3}}}",
        requests.len(),
        rows_per_second[0].1,
        rows_per_second[1].1
    );
}
