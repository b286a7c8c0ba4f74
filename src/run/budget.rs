//! A hard budget: no request starts if what is already spent, plus the worst case of every
//! request in flight, plus this request's worst case, could pass `--max-cost`. The spend of
//! earlier runs on the same journal counts, so a run stopped by its budget continues where it
//! stopped once the cap is raised, and never pays twice.

use crate::judge::{JudgeRequest, Usage, limit::estimated_prompt_tokens};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Prices {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million completion tokens.
    pub output: f64,
}

impl Prices {
    /// What `usage` costs.
    pub fn of(&self, usage: Usage) -> f64 {
        (usage.prompt_tokens as f64 * self.input + usage.completion_tokens as f64 * self.output)
            / 1e6
    }

    /// The most `request` can cost: a generous estimate of its prompt tokens and every
    /// completion token it is allowed.
    pub fn worst(&self, request: &JudgeRequest, completion_allowance: u64) -> f64 {
        (estimated_prompt_tokens(request) * self.input + completion_allowance as f64 * self.output)
            / 1e6
    }
}

/// The spend of a run against its cap.
#[derive(Debug)]
pub(crate) struct Budget {
    cap: Option<f64>,
    before: f64,
    state: Mutex<Spend>,
}

#[derive(Debug, Default)]
struct Spend {
    committed: f64,
    reserved: f64,
}

/// The worst case of one request in flight, held until its answer's real cost is known.
#[derive(Debug)]
#[must_use]
pub(crate) struct Reservation(f64);

impl Budget {
    /// A budget of `cap` (none: unlimited) with `before` already spent by earlier runs.
    pub fn new(cap: Option<f64>, before: f64) -> Self {
        Budget {
            cap,
            before,
            state: Mutex::new(Spend::default()),
        }
    }

    /// Reserves `worst` for a request, or says what is spent when the cap could be passed.
    pub fn reserve(&self, worst: f64) -> Result<Reservation, f64> {
        let mut spend = self.state.lock().expect("never poisoned; this is a bug");
        // A hair of tolerance: costs are sums of products of floats, and a cap of $0.15 reached
        // exactly by three $0.05 requests must let the third one through.
        if let Some(cap) = self.cap
            && self.before + spend.committed + spend.reserved + worst > cap + 1e-9
        {
            return Err(self.before + spend.committed);
        }
        spend.reserved += worst;
        Ok(Reservation(worst))
    }

    /// Replaces a reservation with what the request really cost.
    #[allow(clippy::needless_pass_by_value)] // taking it by value settles it exactly once
    pub fn commit(&self, reservation: Reservation, cost: f64) {
        let mut spend = self.state.lock().expect("never poisoned; this is a bug");
        spend.reserved = (spend.reserved - reservation.0).max(0.0);
        spend.committed += cost;
    }

    /// Spent by this run.
    pub fn this_run(&self) -> f64 {
        self.state
            .lock()
            .expect("never poisoned; this is a bug")
            .committed
    }

    /// Spent in all, earlier runs on the same journal included.
    pub fn total(&self) -> f64 {
        self.before + self.this_run()
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<f64> {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_per_million_tokens() {
        let prices = Prices {
            input: 3.0,
            output: 15.0,
        };
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 100_000,
        };
        assert!((prices.of(usage) - 4.5).abs() < 1e-9);
    }

    #[test]
    fn the_cap_counts_what_is_in_flight_and_what_came_before() {
        let budget = Budget::new(Some(1.0), 0.5);
        let first = budget.reserve(0.3).expect("0.5 + 0.3 fits under 1.0");
        assert_eq!(
            budget.reserve(0.3).unwrap_err(),
            0.5,
            "0.5 + 0.3 in flight + 0.3 would pass"
        );
        budget.commit(first, 0.1);
        let second = budget.reserve(0.3).expect("0.5 + 0.1 + 0.3 fits");
        budget.commit(second, 0.3);
        assert!((budget.total() - 0.9).abs() < 1e-9);
        assert!((budget.this_run() - 0.4).abs() < 1e-9);
        assert!(Budget::new(None, 100.0).reserve(1e9).is_ok());
    }
}
