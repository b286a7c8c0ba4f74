//! Prefill speed of llama.cpp through the bindings alone, with no rejudge code in the way: the
//! baseline that tells whether a gap to llama-bench is rejudge's or the linked llama.cpp's.
//! Usage: `bindings-prefill MODEL.gguf TOKENS THREADS`; prints tokens/s, best of four.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::time::Instant;

const UBATCH: usize = 512;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, model, tokens, threads] = &arguments[..] else {
        panic!("usage: bindings-prefill MODEL.gguf TOKENS THREADS");
    };
    let (count, threads): (usize, i32) = (tokens.parse().unwrap(), threads.parse().unwrap());
    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, model, &LlamaModelParams::default()).unwrap();
    let parameters = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(count as u32 + 128))
        .with_n_batch(2048)
        .with_n_ubatch(UBATCH as u32)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut context = model.new_context(&backend, parameters).unwrap();
    let tokens: Vec<LlamaToken> = (0..count)
        .map(|i| LlamaToken(1000 + (i % 5000) as i32))
        .collect();
    let mut best = f64::MAX;
    for _ in 0..4 {
        context.clear_kv_cache();
        let mut batch = LlamaBatch::new(2048, 1);
        let started = Instant::now();
        for (position, token) in tokens.iter().enumerate() {
            batch
                .add(*token, position as i32, &[0], position + 1 == count)
                .unwrap();
        }
        context.decode(&mut batch).unwrap();
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{{\"tokens\": {count}, \"prefill_tokens_per_second\": {:.1}}}",
        count as f64 / best
    );
}
