//! The in-process judge: llama.cpp through `llama-cpp-2`, on a thread of its own.
//!
//! Requests arrive over a channel from the async pipeline and are decoded together: up to
//! `sequences` rows share each forward pass (continuous batching), and the tokens every prompt
//! starts with (the rubric) are decoded once and shared through the KV cache. Answers are
//! generated under a grammar compiled from the same JSON schema the HTTP judge sends, so every
//! answer parses; under log-probability scoring the digits' probabilities are read from the
//! logits at each score position.

// llama.cpp counts tokens, positions and sequences in `i32`/`u32`; every count here is bounded
// by the context size, far below those types' limits.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use super::{Judge, JudgeError, JudgeRequest, Reply, Sampling, Scoring, Usage, read_probabilities};
use crate::hub::{HubOptions, ModelAddress, fetch_model_file};
use crate::prompt::{ChatMessage, Mode, PAIRWISE_GRAMMAR, judgment_schema};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;

/// The default judge model, fetched from the Hugging Face Hub when none is given.
pub const DEFAULT_MODEL: &str =
    "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf";
/// Tokens decoded in one forward pass at most.
const BATCH_TOKENS: usize = 2048;

/// Settings of the in-process judge.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// Sampling settings.
    pub sampling: Sampling,
    /// CPU threads for llama.cpp.
    pub threads: usize,
    /// Tokens of context per sequence (prompt and answer).
    pub context_size: u32,
    /// Rows decoded together.
    pub sequences: usize,
}

/// Errors while starting the in-process judge.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The model could not be found, fetched or loaded.
    #[error("{0}")]
    Model(String),
}

struct Job {
    messages: Vec<ChatMessage>,
    reply: oneshot::Sender<Result<Reply, JudgeError>>,
    /// Only count the prompt's tokens (for `--dry-run`): the count is sent here and nothing
    /// is decoded.
    count: Option<oneshot::Sender<usize>>,
}

/// The in-process judge's handle; the model lives on its own thread.
pub struct LocalJudge {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    model: String,
    fingerprint: Value,
}

impl LocalJudge {
    /// Loads the model on a new thread; returns once it is ready.
    pub fn start(config: LocalConfig) -> Result<Self, LocalError> {
        let model = config.model_path.file_name().map_or_else(
            || config.model_path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let size = std::fs::metadata(&config.model_path)
            .map_err(|e| {
                LocalError::Model(format!("model file {}: {e}", config.model_path.display()))
            })?
            .len();
        let fingerprint = json!({"backend": "local", "model": model, "model_bytes": size, "sampling": config.sampling});
        let (jobs, receiver) = mpsc::channel();
        let (ready, loaded) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rejudge-llama".into())
            .spawn(move || serve(config, &receiver, &ready))
            .map_err(|e| LocalError::Model(e.to_string()))?;
        match loaded.recv() {
            Ok(Ok(())) => Ok(LocalJudge {
                jobs: Some(jobs),
                thread: Some(thread),
                model,
                fingerprint,
            }),
            Ok(Err(message)) => Err(LocalError::Model(message)),
            Err(_) => Err(LocalError::Model(
                "the model thread stopped while loading".into(),
            )),
        }
    }
}

impl Drop for LocalJudge {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Judge for LocalJudge {
    fn model(&self) -> &str {
        &self.model
    }

    fn fingerprint(&self) -> Value {
        self.fingerprint.clone()
    }

    async fn attempt(&self, request: &JudgeRequest) -> Result<Reply, JudgeError> {
        let stopped = || JudgeError::Local {
            message: "the in-process judge stopped".into(),
            stopped: true,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            messages: request.messages.clone(),
            reply,
            count: None,
        };
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl LocalJudge {
    /// The prompt tokens of `messages` under the model's chat template and tokenizer.
    pub async fn count_tokens(&self, messages: &[ChatMessage]) -> Option<usize> {
        let (reply, _) = oneshot::channel();
        let (count, counted) = oneshot::channel();
        let job = Job {
            messages: messages.to_vec(),
            reply,
            count: Some(count),
        };
        self.jobs.as_ref()?.send(job).ok()?;
        counted.await.ok()
    }
}

/// Finds the GGUF file: a local path, an `hf://ORG/REPO[@REVISION]/FILE` address, or the
/// default model. Hub files go to the standard Hugging Face cache (through [`crate::hub`]) and
/// are reused from there without a network.
pub async fn resolve_model(source: Option<&str>, hub: &HubOptions) -> Result<PathBuf, LocalError> {
    let source = source.unwrap_or(DEFAULT_MODEL);
    if !crate::hub::is_hub_address(source) {
        let path = PathBuf::from(source);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(LocalError::Model(format!(
                "model file {source} does not exist\nhint: give a .gguf path or hf://ORG/REPO/FILE.gguf"
            )))
        };
    }
    let address = ModelAddress::parse(source).map_err(|e| LocalError::Model(e.to_string()))?;
    let hint = "hint: pass --model-file PATH.gguf, set REJUDGE_MODEL_FILE, or run scripts/demo-model.sh for the tiny demo model";
    fetch_model_file(hub, &address)
        .await
        .map_err(|e| LocalError::Model(format!("could not get the model {source}: {e}\n{hint}")))
}

/// The model thread: loads, reports readiness, then decodes jobs until the channel closes.
fn serve(
    config: LocalConfig,
    jobs: &mpsc::Receiver<Job>,
    ready: &mpsc::Sender<Result<(), String>>,
) {
    let (backend, model) = match load(&config) {
        Ok(loaded) => loaded,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let context = match new_context(&backend, &model, &config) {
        Ok(context) => context,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let grammar = match config.sampling.mode {
        Mode::Rating => llama_cpp_2::json_schema_to_grammar(&judgment_schema().to_string()).ok(),
        Mode::Pairwise => Some(PAIRWISE_GRAMMAR.to_owned()),
    };
    let _ = ready.send(Ok(()));
    let mut engine = Engine::new(&model, context, config, grammar);
    engine.run(jobs);
}

fn new_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    config: &LocalConfig,
) -> Result<LlamaContext<'m>, String> {
    let sequences = config.sequences.max(1) as u32;
    let threads = i32::try_from(config.threads.max(1)).unwrap_or(1);
    // One extra sequence holds the shared prompt prefix.
    let total_context = config.context_size.saturating_mul(sequences + 1);
    let parameters = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(total_context))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(512)
        .with_n_seq_max(sequences + 1)
        .with_kv_unified(true)
        .with_swa_full(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model
        .new_context(backend, parameters)
        .map_err(|e| format!("creating a llama.cpp context of {total_context} tokens: {e}"))
}

fn load(config: &LocalConfig) -> Result<(LlamaBackend, LlamaModel), String> {
    #[cfg(feature = "cpu-variants")]
    super::cpu_variants::ensure_loaded()?;
    let mut backend = LlamaBackend::init().map_err(|e| format!("starting llama.cpp: {e}"))?;
    backend.void_logs();
    let model =
        LlamaModel::load_from_file(&backend, &config.model_path, &LlamaModelParams::default())
            .map_err(|e| format!("loading {}: {e}", config.model_path.display()))?;
    Ok((backend, model))
}
/// How the next token is chosen.
enum Picker {
    /// Temperature 0: the most likely token the grammar allows. The grammar is checked against
    /// the top token first and applied to the whole vocabulary only when it rejects it, which
    /// saves a pass over every token (262K for Gemma) at almost every step.
    Greedy(Option<LlamaSampler>),
    /// Temperature above 0: grammar, temperature and a seeded draw, in one chain.
    Sampled(LlamaSampler),
}

/// A row being decoded in one sequence slot.
struct Active {
    reply: oneshot::Sender<Result<Reply, JudgeError>>,
    started: Instant,
    prompt_tokens: usize,
    pending: Vec<LlamaToken>,
    position: i32,
    last: Option<LlamaToken>,
    picker: Picker,
    text: Vec<u8>,
    generated: usize,
    steps: Vec<(String, Vec<(String, f64)>)>,
}

struct Engine<'m> {
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    config: LocalConfig,
    grammar: Option<String>,
    slots: Vec<Option<Active>>,
    prefix: Vec<LlamaToken>,
    prefix_ready: bool,
    /// The tokens whose probabilities are read: score digits (labelled "1".."5") under the
    /// rating protocol, the verdict's first token ("A", "tie", "B") under the pairwise one.
    probed: Vec<(&'static str, LlamaToken)>,
}

impl<'m> Engine<'m> {
    fn new(
        model: &'m LlamaModel,
        context: LlamaContext<'m>,
        config: LocalConfig,
        grammar: Option<String>,
    ) -> Self {
        let probed = probed_tokens(model, config.sampling.mode);
        let slots = (0..config.sequences.max(1)).map(|_| None).collect();
        Engine {
            model,
            context,
            config,
            grammar,
            slots,
            prefix: Vec::new(),
            prefix_ready: false,
            probed,
        }
    }

    fn prefix_sequence(&self) -> i32 {
        self.slots.len() as i32
    }

    fn run(&mut self, jobs: &mpsc::Receiver<Job>) {
        loop {
            if !self.admit(jobs) {
                return;
            }
            if let Err(message) = self.step() {
                self.fail_all(&message);
            }
        }
    }

    /// Fills free slots; waits for a job when every slot is free. False once the channel closes
    /// and nothing is left to decode.
    fn admit(&mut self, jobs: &mpsc::Receiver<Job>) -> bool {
        let idle = self.slots.iter().all(Option::is_none);
        let mut first = true;
        while let Some(slot) = self.slots.iter().position(Option::is_none) {
            let job = if idle && first {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return false,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            first = false;
            self.place(slot, job);
        }
        true
    }

    /// The prompt's tokens, when they leave room for the answer in the context.
    fn fitting_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, String> {
        let tokens = self.tokenize(messages)?;
        let limit = self.config.context_size as usize;
        let room = self.config.sampling.max_tokens as usize;
        if tokens.len() + room > limit {
            return Err(format!(
                "the prompt has {} tokens; with {room} for the answer it does not fit the context of {limit} (raise --context-size)",
                tokens.len()
            ));
        }
        Ok(tokens)
    }

    /// Answers a token count without taking a slot.
    fn count(&self, job: Job) {
        if let (Some(count), Ok(tokens)) = (job.count, self.tokenize(&job.messages)) {
            let _ = count.send(tokens.len());
        }
    }

    fn place(&mut self, slot: usize, job: Job) {
        if job.count.is_some() {
            self.count(job);
            return;
        }
        let started = Instant::now();
        let tokens = match self.fitting_tokens(&job.messages) {
            Ok(tokens) => tokens,
            Err(message) => {
                let _ = job.reply.send(Err(JudgeError::Local {
                    message,
                    stopped: false,
                }));
                return;
            }
        };
        if !self.prefix_ready {
            self.learn_prefix(&job.messages, &tokens);
        }
        let shared = self.shared_prefix(&tokens);
        let sequence = slot as i32;
        let _ = self.context.kv_cache_seq_rm(sequence, None, None);
        if shared > 0 {
            let _ = self.context.kv_cache_seq_cp(
                self.prefix_sequence(),
                sequence,
                Some(0),
                Some(shared as u32),
            );
        }
        let Some(picker) = self.picker() else {
            let _ = job.reply.send(Err(JudgeError::Local {
                message: "the answer grammar could not be built".into(),
                stopped: true,
            }));
            return;
        };
        self.slots[slot] = Some(Active {
            reply: job.reply,
            started,
            prompt_tokens: tokens.len(),
            pending: tokens[shared..].to_vec(),
            position: shared as i32,
            last: None,
            picker,
            text: Vec::new(),
            generated: 0,
            steps: Vec::new(),
        });
    }

    fn picker(&self) -> Option<Picker> {
        let grammar = match &self.grammar {
            Some(grammar) => Some(LlamaSampler::grammar(self.model, grammar, "root").ok()?),
            None => None,
        };
        let sampling = &self.config.sampling;
        if sampling.temperature <= 0.0 {
            return Some(Picker::Greedy(grammar));
        }
        let mut chain: Vec<LlamaSampler> = grammar.into_iter().collect();
        chain.push(LlamaSampler::temp(sampling.temperature as f32));
        chain.push(LlamaSampler::dist(sampling.seed.unwrap_or(0) as u32));
        Some(Picker::Sampled(LlamaSampler::chain_simple(chain)))
    }

    /// The tokens of the chat-formatted prompt; a model without a chat template (a base model)
    /// gets a plain layout.
    fn tokenize(&self, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, String> {
        let text = self.format(messages)?;
        Ok(self.model.vocab().tokenize(text.as_bytes(), true, true))
    }

    fn format(&self, messages: &[ChatMessage]) -> Result<String, String> {
        let chat: Result<Vec<LlamaChatMessage>, _> = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect();
        let chat = chat.map_err(|e| format!("a message holds a NUL byte: {e}"))?;
        if let Ok(template) = self.model.chat_template(None)
            && let Ok(text) = self.model.apply_chat_template(&template, &chat, true)
        {
            return Ok(text);
        }
        let mut text = String::new();
        for message in messages {
            text.push_str(&message.content);
            text.push_str("\n\n");
        }
        text.push_str("JSON answer:\n");
        Ok(text)
    }

    /// The tokens every prompt shares: the first prompt rendered with two different user
    /// messages agrees up to the end of the rubric.
    fn learn_prefix(&mut self, messages: &[ChatMessage], tokens: &[LlamaToken]) {
        self.prefix_ready = true;
        let variant = |content: &str| {
            let mut changed = messages.to_vec();
            if let Some(last) = changed.last_mut() {
                content.clone_into(&mut last.content);
            }
            self.tokenize(&changed).unwrap_or_default()
        };
        let (one, two) = (variant("x"), variant("y"));
        let common = one.iter().zip(&two).take_while(|(a, b)| a == b).count();
        let common = common.min(tokens.len().saturating_sub(1));
        if common < 16 {
            return;
        }
        let prefix = tokens[..common].to_vec();
        let sequence = self.prefix_sequence();
        for (offset, chunk) in prefix.chunks(BATCH_TOKENS).enumerate() {
            let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
            for (position, token) in chunk.iter().enumerate() {
                let position = (offset * BATCH_TOKENS + position) as i32;
                if batch.add(*token, position, &[sequence], false).is_err() {
                    return;
                }
            }
            if self.context.decode(&mut batch).is_err() {
                let _ = self.context.kv_cache_seq_rm(sequence, None, None);
                return;
            }
        }
        self.prefix = prefix;
    }

    fn shared_prefix(&self, tokens: &[LlamaToken]) -> usize {
        let common = self
            .prefix
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // At least one token must be decoded for the slot to get logits.
        common.min(tokens.len().saturating_sub(1))
    }

    /// One forward pass over every active slot: a token each for slots that are generating,
    /// then prompt chunks for slots still reading their prompt.
    fn step(&mut self) -> Result<(), String> {
        let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
        let mut logits_at: Vec<(usize, i32)> = Vec::new();
        let mut used = 0usize;
        for (slot, active) in self.slots.iter_mut().enumerate() {
            let Some(active) = active else { continue };
            if let (true, Some(token)) = (active.pending.is_empty(), active.last) {
                batch
                    .add(token, active.position, &[slot as i32], true)
                    .map_err(|e| e.to_string())?;
                active.position += 1;
                logits_at.push((slot, used as i32));
                used += 1;
            }
        }
        for (slot, active) in self.slots.iter_mut().enumerate() {
            let Some(active) = active else { continue };
            if active.pending.is_empty() || used >= BATCH_TOKENS {
                continue;
            }
            let take = active.pending.len().min(BATCH_TOKENS - used);
            let chunk: Vec<LlamaToken> = active.pending.drain(..take).collect();
            let finishing = active.pending.is_empty();
            for (offset, token) in chunk.iter().enumerate() {
                let wants_logits = finishing && offset + 1 == chunk.len();
                batch
                    .add(*token, active.position, &[slot as i32], wants_logits)
                    .map_err(|e| e.to_string())?;
                active.position += 1;
                if wants_logits {
                    logits_at.push((slot, used as i32));
                }
                used += 1;
            }
        }
        if used == 0 {
            return Ok(());
        }
        self.context
            .decode(&mut batch)
            .map_err(|e| format!("llama.cpp decode: {e}"))?;
        for (slot, index) in logits_at {
            self.sample(slot, index);
        }
        Ok(())
    }

    fn sample(&mut self, slot: usize, index: i32) {
        let candidates = self.score_candidates(slot, index);
        let Some(active) = self.slots[slot].as_mut() else {
            return;
        };
        let token = pick(&mut active.picker, &self.context, index);
        let vocab = self.model.vocab();
        let finished_by_model = vocab.is_eog(token);
        if !finished_by_model {
            let piece = vocab.token_to_piece(token, false, None);
            if self.config.sampling.scoring == Scoring::Logprobs {
                active
                    .steps
                    .push((String::from_utf8_lossy(&piece).into_owned(), candidates));
            }
            active.text.extend_from_slice(&piece);
            active.generated += 1;
            active.last = Some(token);
        }
        let at_limit = active.generated >= self.config.sampling.max_tokens as usize;
        let out_of_room = active.position as usize + 1 >= self.config.context_size as usize;
        if finished_by_model || at_limit || out_of_room {
            self.finish(slot);
        }
    }

    /// Log-probabilities of the probed tokens where the answer is about to commit: a score
    /// position (`"score":`) under the rating protocol, the first token under the pairwise one.
    fn score_candidates(&self, slot: usize, index: i32) -> Vec<(String, f64)> {
        let Some(active) = self.slots[slot].as_ref() else {
            return Vec::new();
        };
        if self.config.sampling.scoring != Scoring::Logprobs {
            return Vec::new();
        }
        let at_verdict = match self.config.sampling.mode {
            Mode::Rating => {
                let text = String::from_utf8_lossy(&active.text);
                let trimmed = text.trim_end();
                trimmed.ends_with("\"score\":") || trimmed.ends_with("\"score\": ")
            }
            Mode::Pairwise => active.generated == 0,
        };
        if !at_verdict {
            return Vec::new();
        }
        let logits = self.context.get_logits_ith(index);
        let mut best: Vec<(&str, f64)> = Vec::new();
        for (label, token) in &self.probed {
            let Some(logit) = logits.get(token.0 as usize).map(|l| f64::from(*l)) else {
                continue;
            };
            match best.iter_mut().find(|(seen, _)| seen == label) {
                Some(entry) => entry.1 = entry.1.max(logit),
                None => best.push((label, logit)),
            }
        }
        let top = best
            .iter()
            .map(|(_, l)| *l)
            .fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            return Vec::new();
        }
        let total: f64 = best.iter().map(|(_, l)| (l - top).exp()).sum();
        best.into_iter()
            .map(|(label, logit)| (label.to_owned(), logit - top - total.ln()))
            .collect()
    }

    fn finish(&mut self, slot: usize) {
        let Some(active) = self.slots[slot].take() else {
            return;
        };
        let _ = self.context.kv_cache_seq_rm(slot as i32, None, None);
        let probabilities = match self.config.sampling.scoring {
            Scoring::Logprobs => read_probabilities(self.config.sampling.mode, active.steps),
            Scoring::Score => None,
        };
        let reply = Reply {
            text: String::from_utf8_lossy(&active.text).into_owned(),
            usage: Usage {
                prompt_tokens: active.prompt_tokens as u64,
                completion_tokens: active.generated as u64,
            },
            probabilities,
            // The grammar allows nothing else.
            structured: true,
            pause: None,
            attempts: 1,
            latency: active.started.elapsed(),
        };
        let _ = active.reply.send(Ok(reply));
    }

    fn fail_all(&mut self, message: &str) {
        for slot in 0..self.slots.len() {
            if let Some(active) = self.slots[slot].take() {
                let _ = self.context.kv_cache_seq_rm(slot as i32, None, None);
                let _ = active.reply.send(Err(JudgeError::Local {
                    message: message.to_owned(),
                    stopped: false,
                }));
            }
        }
    }
}

/// The single tokens that spell each probed answer, with and without a leading space. A verdict
/// word the vocabulary splits ("tie" as "t" + "ie") is probed by its first token: under the
/// grammar, nothing else can start with it.
fn probed_tokens(model: &LlamaModel, mode: Mode) -> Vec<(&'static str, LlamaToken)> {
    let labels: &[&'static str] = match mode {
        Mode::Rating => &["1", "2", "3", "4", "5"],
        Mode::Pairwise => &["A", "tie", "B"],
    };
    let vocab = model.vocab();
    let mut probed = Vec::new();
    for label in labels {
        for spelling in [(*label).to_owned(), format!(" {label}")] {
            let tokens = vocab.tokenize(spelling.as_bytes(), false, false);
            let first = match (mode, tokens.as_slice()) {
                (_, [token]) | (Mode::Pairwise, [token, ..]) => *token,
                _ => continue,
            };
            if !probed.contains(&(*label, first)) {
                probed.push((*label, first));
            }
        }
    }
    probed
}

/// Chooses and accepts the next token of one sequence.
fn pick(picker: &mut Picker, context: &LlamaContext<'_>, index: i32) -> LlamaToken {
    let grammar = match picker {
        Picker::Sampled(chain) => return chain.sample(context, index),
        Picker::Greedy(grammar) => grammar,
    };
    let logits = context.get_logits_ith(index);
    let best = most_likely(logits.iter().copied().enumerate());
    let Some(grammar) = grammar else {
        return LlamaToken(best as i32);
    };
    let mut top = LlamaTokenDataArray::new(
        vec![LlamaTokenData::new(
            LlamaToken(best as i32),
            logits[best],
            0.0,
        )],
        false,
    );
    grammar.apply(&mut top);
    let token = if top.data[0].logit().is_finite() {
        LlamaToken(best as i32)
    } else {
        let mut all = context.token_data_array_ith(index);
        grammar.apply(&mut all);
        let allowed = all.data.iter().map(|d| (d.id().0 as usize, d.logit()));
        LlamaToken(most_likely(allowed) as i32)
    };
    grammar.accept(token);
    token
}

fn most_likely(logits: impl Iterator<Item = (usize, f32)>) -> usize {
    logits
        .fold((0usize, f32::NEG_INFINITY), |best, (id, logit)| {
            if logit > best.1 { (id, logit) } else { best }
        })
        .0
}
