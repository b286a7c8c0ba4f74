//! The progress display: a bar on a terminal, a plain line every few seconds otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rejudge::run::{Cost, Progress};
use rejudge::verdict::{Outcome, Verdict};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Shows rows/s, ETA, tokens and failures on stderr.
pub struct Bar {
    terminal: Option<ProgressBar>,
    plain: bool,
    total: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    tokens: AtomicU64,
    resumed: AtomicU64,
    resumed_seen: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
    pace: Mutex<String>,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal() && !quiet;
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
                )
                .expect("the progress template is valid; this is a bug"),
            );
            bar
        });
        Bar {
            terminal: bar,
            plain: !terminal && !quiet,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            resumed_seen: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            pace: Mutex::new(String::new()),
        }
    }

    pub fn done(&self) {
        if let Some(bar) = &self.terminal {
            bar.finish_and_clear();
        }
    }

    fn line(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "rejudge: {done}/{} rows, {:.1} rows/s, {} tokens, {} failed{}",
            self.total.load(Ordering::Relaxed),
            done.saturating_sub(self.resumed.load(Ordering::Relaxed)) as f64 / elapsed,
            self.tokens.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.pace_text()
        );
    }
}

impl Bar {
    fn pace_text(&self) -> String {
        self.pace
            .lock()
            .expect("the progress lock is never poisoned; this is a bug")
            .clone()
    }
}

impl Progress for Bar {
    fn pace(&self, pace: rejudge::judge::Pace) {
        let mut text = if pace.throttled {
            format!("  {}/{} in flight, throttled", pace.in_flight, pace.limit)
        } else {
            format!("  {}/{} in flight", pace.in_flight, pace.limit)
        };
        if let Some(spent) = pace.spent {
            text.push_str(&format!("  ${spent:.4}"));
        }
        *self
            .pace
            .lock()
            .expect("the progress lock is never poisoned; this is a bug") = text;
    }

    fn start(&self, total: u64, finished_before: u64) {
        self.total.store(total, Ordering::Relaxed);
        if finished_before > 0 {
            eprintln!(
                "rejudge: {finished_before} of {total} rows already done in the journal; resuming"
            );
        }
        // The bar starts from the rows already done; the journal's answers for them then fill
        // in without moving it, so rows/s and the ETA describe the work left.
        self.resumed.store(finished_before, Ordering::Relaxed);
        self.done.store(finished_before, Ordering::Relaxed);
        if let Some(bar) = &self.terminal {
            bar.set_length(total);
            bar.set_position(finished_before);
            bar.reset_eta();
        }
    }

    fn row(&self, verdict: &Verdict, cost: Cost) {
        let (outcome, usage) = (verdict.outcome, cost.usage);
        if cost.from_journal
            && self.resumed_seen.fetch_add(1, Ordering::Relaxed)
                < self.resumed.load(Ordering::Relaxed)
        {
            return;
        }
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        // A server can report any token count; the total saturates instead of wrapping.
        let spent = usage.prompt_tokens.saturating_add(usage.completion_tokens);
        let before = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                Some(total.saturating_add(spent))
            })
            .unwrap_or_else(|total| total);
        let tokens = before.saturating_add(spent);
        let failed = self.failed.load(Ordering::Relaxed) + u64::from(outcome == Outcome::Failed);
        if outcome == Outcome::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &self.terminal {
            bar.set_position(done);
            bar.set_message(format!("{tokens} tok  {failed} failed{}", self.pace_text()));
        } else if self.plain {
            let mut last = self
                .last_line
                .lock()
                .expect("the progress lock is never poisoned; this is a bug");
            if last.elapsed() >= PLAIN_EVERY || done == self.total.load(Ordering::Relaxed) {
                *last = Instant::now();
                drop(last);
                self.line();
            }
        }
    }
}
