//! Statistics that measure a judge against human (gold) labels.
//!
//! Each evaluated pair has a gold preference, and the judge gives a signed *decision value* `s`
//! toward the gold-preferred response: positive when the judge prefers the gold response,
//! negative when it prefers the other. Its scale depends on the protocol (a score difference in
//! `[-4, 4]`, a probability difference in `[-1, 1]`). At a *margin* `m >= 0` a row is
//!
//! * kept (agreement) when `s > m`,
//! * swapped (disagreement) when `s < -m`,
//! * a tie otherwise, that is when `|s| <= m`; a row exactly on the margin is a tie.
//!
//! The module offers proportions with Wilson intervals, agreement tallies at a margin, Cohen's
//! kappa, a percentile bootstrap, the whole margin curve with calibration to a target agreement,
//! and histograms. Everything is computed from plain values with `std` only, and every result is
//! deterministic: the bootstrap draws from [`SplitMix64`], a fixed generator seeded by the
//! caller, so the same input and seed give the same interval on every platform.

use std::cmp::Ordering;

/// The two-sided 95% normal quantile, the `z` of the Wilson interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A closed interval `[low, high]`, such as a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether `value` lies in the interval, bounds included.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// The 95% Wilson score interval for the proportion `successes / trials`.
///
/// Unlike the normal (Wald) interval it stays inside `[0, 1]` and keeps sensible coverage for
/// small samples and proportions near 0 or 1, which is where judge agreement often lies.
/// `None` when `trials` is 0 or `successes` exceeds `trials`.
pub fn wilson(successes: u64, trials: u64) -> Option<Interval> {
    if trials == 0 || successes > trials {
        return None;
    }
    let count = trials as f64;
    let proportion = successes as f64 / count;
    let z_squared = Z_95 * Z_95;
    let denominator = 1.0 + z_squared / count;
    let center = (proportion + z_squared / (2.0 * count)) / denominator;
    let spread = proportion * (1.0 - proportion) / count + z_squared / (4.0 * count * count);
    let half_width = Z_95 * spread.sqrt() / denominator;
    // Rounding can push a bound a hair past 0 or 1 at the extremes; the exact bounds never do.
    Some(Interval {
        low: (center - half_width).max(0.0),
        high: (center + half_width).min(1.0),
    })
}

/// How many rows the judge agreed with, disagreed with, or tied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tallies {
    /// Rows where the judge preferred the gold response (`s > m`).
    pub agree: u64,
    /// Rows where the judge preferred the other response (`s < -m`).
    pub disagree: u64,
    /// Rows within the margin (`|s| <= m`), plus rows without a usable value (NaN).
    pub tie: u64,
}

impl Tallies {
    /// All rows: agreements, disagreements and ties.
    pub fn total(&self) -> u64 {
        self.agree + self.disagree + self.tie
    }

    /// Rows the judge decided either way (agreements plus disagreements).
    pub fn decided(&self) -> u64 {
        self.agree + self.disagree
    }

    /// Agreement over all rows, a tie counting one half: `(agree + tie / 2) / total`.
    ///
    /// A tie is scored as a coin flip would be, so abstaining neither helps nor hurts the judge
    /// against a random guess. `None` when there are no rows.
    pub fn agreement(&self) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        Some((self.agree as f64 + 0.5 * self.tie as f64) / total as f64)
    }

    /// Agreement over decided rows only: `agree / (agree + disagree)`. `None` when none is decided.
    pub fn agreement_decided(&self) -> Option<f64> {
        share(self.agree, self.decided())
    }

    /// The share of rows decided either way: `(agree + disagree) / total`. `None` when there are
    /// no rows.
    pub fn coverage(&self) -> Option<f64> {
        share(self.decided(), self.total())
    }
}

/// Tallies the decision values at `margin`.
///
/// A negative or NaN margin behaves as 0. A NaN decision value counts as a tie at every margin:
/// the judge gave no usable preference, so it is neither kept nor swapped.
pub fn tallies_at(decisions: &[f64], margin: f64) -> Tallies {
    let margin = margin.max(0.0);
    let mut tallies = Tallies::default();
    for &decision in decisions {
        if decision > margin {
            tallies.agree += 1;
        } else if decision < -margin {
            tallies.disagree += 1;
        } else {
            tallies.tie += 1;
        }
    }
    tallies
}

/// Which response a rater preferred, by position in the input's own order, or a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// The first response of the pair.
    First,
    /// The second response of the pair.
    Second,
    /// Neither response.
    Tie,
}

impl Label {
    /// The label's row or column in a confusion table.
    fn index(self) -> usize {
        match self {
            Label::First => 0,
            Label::Second => 1,
            Label::Tie => 2,
        }
    }
}

/// Cohen's kappa between the judge and gold labels, given as `(judge, gold)` pairs.
///
/// `(p_o - p_e) / (1 - p_e)`, where `p_o` is the observed agreement and `p_e` the agreement
/// expected if both raters labelled independently with their own label frequencies. Any of the
/// three labels may appear on either side. The table is counted in integers and the ratio taken
/// once, so the undefined case (`p_e == 1`: both raters used one and the same label throughout)
/// is detected exactly. `None` then, and when there are no pairs.
pub fn cohen_kappa(pairs: &[(Label, Label)]) -> Option<f64> {
    let mut table = [[0_u64; 3]; 3];
    for &(judge, gold) in pairs {
        table[judge.index()][gold.index()] += 1;
    }
    let total = i128::from(pairs.len() as u64);
    let mut observed = 0_i128;
    let mut expected = 0_i128;
    for label in 0..3 {
        let judge_count: u64 = table[label].iter().sum();
        let gold_count: u64 = table.iter().map(|row| row[label]).sum();
        observed += i128::from(table[label][label]);
        expected += i128::from(judge_count) * i128::from(gold_count);
    }
    // Multiplying p_o and p_e through by total^2 keeps both sides exact integers.
    let numerator = total * observed - expected;
    let denominator = total * total - expected;
    if denominator == 0 {
        return None;
    }
    Some(numerator as f64 / denominator as f64)
}

/// A small, fast pseudo-random generator: SplitMix64 (Steele, Lea and Flood, 2014).
///
/// The state advances by a fixed odd constant and each output is a bijective mix of the state,
/// so every `u64` seed (0 included) gives a full-period, well-mixed stream. It is built from
/// wrapping integer arithmetic only, so a seed yields the same stream on every platform. It is
/// not cryptographic; it only has to make resampling reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    /// The generator's state; it advances by the golden-ratio increment on every draw.
    state: u64,
}

impl SplitMix64 {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A uniform draw from `0..bound`; `bound` must be positive (0 panics: the range is empty).
    ///
    /// Lemire's multiply-and-shift, with rejection of the few products that would make some
    /// values more likely than others, so the draw has no modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        // The products whose low half falls below this threshold are the biased ones.
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the low 64 bits are wanted"
            )]
            let low_half = product as u64;
            if low_half >= threshold {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "the high half is below bound"
                )]
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform index into a slice of `length` items; `length` must be positive.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the draw is below length, a usize"
    )]
    fn index_below(&mut self, length: usize) -> usize {
        self.below(length as u64) as usize
    }
}

/// A 95% percentile-bootstrap interval for `statistic` over `rows` rows.
///
/// Each of `resamples` resamples draws `rows` row indices uniformly with replacement from
/// `0..rows` (repeats allowed) and evaluates `statistic` on them; the statistic looks its rows
/// up by index. Resamples where it returns `None` or NaN are skipped. The bounds are the 2.5th
/// and 97.5th percentiles of the values, by the nearest-rank rule: the `p`-th percentile of `k`
/// sorted values is the one at rank `ceil(p / 100 * k)` (1-based, at least 1), computed in
/// integers so it is exact.
///
/// `None` when `rows` or `resamples` is 0, or when fewer than half the resamples gave a value.
/// The draws come from [`SplitMix64`] seeded with `seed`, so the interval is reproducible.
///
/// Cost: `resamples x rows` index draws plus `resamples` calls of `statistic`, each over `rows`
/// indices, so about `resamples x rows` steps for a linear statistic (1,000 resamples of 10,000
/// rows is 10^7). Memory: one index buffer of `rows` and one value per resample.
pub fn bootstrap_interval(
    rows: usize,
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Option<Interval> {
    if rows == 0 || resamples == 0 {
        return None;
    }
    let mut random = SplitMix64::new(seed);
    let mut sample = vec![0_usize; rows];
    let mut values = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in &mut sample {
            *slot = random.index_below(rows);
        }
        if let Some(value) = statistic(&sample)
            && !value.is_nan()
        {
            values.push(value);
        }
    }
    if values.len() * 2 < resamples {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(Interval {
        low: nearest_rank(&values, 25)?,
        high: nearest_rank(&values, 975)?,
    })
}

/// The nearest-rank percentile of `sorted` values, the percentile given in tenths of a percent.
fn nearest_rank(sorted: &[f64], per_mille: usize) -> Option<f64> {
    let rank = (sorted.len() * per_mille).div_ceil(1000).max(1);
    sorted.get(rank - 1).copied()
}

/// Agreement and coverage at one margin of the margin curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The margin `m`: rows with `|s| <= m` are ties.
    pub margin: f64,
    /// Agreement over all rows, ties counting one half (see [`Tallies::agreement`]).
    pub agreement: f64,
    /// Agreement over decided rows; `None` when no row is decided at this margin.
    pub agreement_decided: Option<f64>,
    /// The share of rows decided either way.
    pub coverage: f64,
    /// How many rows are decided either way.
    pub decided: u64,
}

impl CurvePoint {
    /// The point for `tallies` counted at `margin`; `None` when the tallies hold no rows.
    pub fn from_tallies(margin: f64, tallies: &Tallies) -> Option<Self> {
        Some(Self {
            margin,
            agreement: tallies.agreement()?,
            agreement_decided: tallies.agreement_decided(),
            coverage: tallies.coverage()?,
            decided: tallies.decided(),
        })
    }
}

/// Agreement and coverage at every margin where they can change.
///
/// One point per candidate margin: 0 and every distinct `|s|`, ascending. The tallies are a step
/// function of the margin that only moves when the margin reaches some `|s|` (that row becomes a
/// tie), so between two candidates they equal those at the lower one. NaN values are ties at
/// every margin and add no candidate. Empty input gives an empty curve.
///
/// Cost: one sort and one sweep, `O(n log n)`.
pub fn margin_curve(decisions: &[f64]) -> Vec<CurvePoint> {
    let total = decisions.len() as u64;
    // Only nonzero values are ever decided (at margin >= 0); zeros and NaN are ties throughout.
    let mut decidable: Vec<(f64, bool)> = decisions
        .iter()
        .filter(|decision| **decision != 0.0 && !decision.is_nan())
        .map(|&decision| (decision.abs(), decision > 0.0))
        .collect();
    decidable.sort_by(|left, right| left.0.total_cmp(&right.0));
    let mut tallies = Tallies {
        agree: decidable.iter().filter(|(_, positive)| *positive).count() as u64,
        disagree: decidable.iter().filter(|(_, positive)| !*positive).count() as u64,
        tie: 0,
    };
    tallies.tie = total - tallies.decided();
    let mut points = Vec::with_capacity(decidable.len() + 1);
    points.extend(CurvePoint::from_tallies(0.0, &tallies));
    let mut next = 0;
    while let Some(&(margin, _)) = decidable.get(next) {
        // Every row whose |s| equals this margin becomes a tie here.
        while let Some(&(magnitude, positive)) = decidable.get(next) {
            if magnitude.total_cmp(&margin) == Ordering::Greater {
                break;
            }
            if positive {
                tallies.agree -= 1;
            } else {
                tallies.disagree -= 1;
            }
            tallies.tie += 1;
            next += 1;
        }
        points.extend(CurvePoint::from_tallies(margin, &tallies));
    }
    points
}

/// The smallest margin whose agreement over decided rows reaches `target`.
///
/// Because the tallies only change at the candidate margins of [`margin_curve`], the smallest
/// margin of all reaching the target is one of them. At least one row must be decided there.
/// `None` when no margin reaches the target (or `target` is NaN).
pub fn calibrate(decisions: &[f64], target: f64) -> Option<CurvePoint> {
    margin_curve(decisions).into_iter().find(|point| {
        point
            .agreement_decided
            .is_some_and(|agreement| agreement >= target)
    })
}

/// Counts of values in equal-width bins.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The bin edges, ascending: one more than there are bins. Bin `i` spans
    /// `[edges[i], edges[i + 1])`; the last bin also includes its upper edge.
    pub edges: Vec<f64>,
    /// How many values fell in each bin.
    pub counts: Vec<u64>,
}

/// A histogram of `values` over `bins` equal-width bins spanning `[low, high]`.
///
/// Values below `low` count in the first bin and values above `high` in the last, so every
/// non-NaN value is counted; NaN values are skipped. The end edges are exactly `low` and `high`.
/// With `bins == 0` the histogram is empty. When the range is degenerate (`low >= high`, or
/// either bound not finite) every non-NaN value counts in the first bin.
pub fn histogram(values: &[f64], low: f64, high: f64, bins: usize) -> Histogram {
    if bins == 0 {
        return Histogram {
            edges: Vec::new(),
            counts: Vec::new(),
        };
    }
    let width = high - low;
    let mut edges: Vec<f64> = (0..=bins)
        .map(|index| low + width * (index as f64 / bins as f64))
        .collect();
    // The formula can round the top edge away from `high`; pin it so the range is exact.
    edges[bins] = high;
    let proper = low.is_finite() && high.is_finite() && low < high;
    let mut counts = vec![0_u64; bins];
    for &value in values.iter().filter(|value| !value.is_nan()) {
        let bin = if proper { bin_of(value, &edges) } else { 0 };
        counts[bin] += 1;
    }
    Histogram { edges, counts }
}

/// The bin of a non-NaN `value` among the ascending `edges` (at least two), clamped to the ends.
fn bin_of(value: f64, edges: &[f64]) -> usize {
    let bins = edges.len() - 1;
    let (low, high) = (edges[0], edges[bins]);
    // A float-to-integer `as` saturates: below the range gives 0, above it (or infinite) the
    // maximum, which the `min` clamps into the last bin.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "saturation is the clamping wanted"
    )]
    let mut bin = (((value - low) / (high - low)) * bins as f64).floor() as usize;
    bin = bin.min(bins - 1);
    // The division can round a value sitting on an edge into the neighbouring bin; settle it
    // against the edges themselves so the counts agree with the edges reported.
    while bin > 0 && value < edges[bin] {
        bin -= 1;
    }
    while bin + 1 < bins && value >= edges[bin + 1] {
        bin += 1;
    }
    bin
}

/// `part / whole` as a fraction; `None` when `whole` is 0.
pub fn share(part: u64, whole: u64) -> Option<f64> {
    if whole == 0 {
        return None;
    }
    Some(part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Whether `actual` is within `tolerance` of `expected`.
    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn wilson_seven_of_ten() {
        // n = 10, p = 0.7, z = 1.959963984540054.
        // z^2 = 3.841458820694125, z^2 / n = 0.3841458820694125, so the denominator is
        //   1 + z^2 / n = 1.3841458820694125.
        // centre = (p + z^2 / 2n) / denominator = (0.7 + 0.19207294103470625) / 1.38414588...
        //        = 0.89207294103470625 / 1.3841458820694125 = 0.644493440027422.
        // spread = p(1 - p) / n + z^2 / 4n^2 = 0.021 + 0.009603647051735313 = 0.030603647051735313,
        //   sqrt = 0.17493898093831264; half width = z * 0.174938980938... / denominator
        //        = 0.34287567563527... / 1.38414588... = 0.247715292566277.
        // low = 0.644493440027422 - 0.247715292566277 = 0.396778147461145,
        // high = 0.644493440027422 + 0.247715292566277 = 0.892208732593699.
        let interval = wilson(7, 10).expect("10 trials");
        assert!(
            close(interval.low, 0.396_778_147_461_145, 1e-12),
            "{interval:?}"
        );
        assert!(
            close(interval.high, 0.892_208_732_593_699, 1e-12),
            "{interval:?}"
        );
    }

    #[test]
    fn wilson_extremes_and_undefined() {
        // 0 of 10: p = 0, so centre = half width = (z^2 / 2n) / (1 + z^2 / n)
        //   = 0.19207294103470625 / 1.3841458820694125 = 0.277532799862889; low is 0 and high
        //   is twice that centre.
        let none = wilson(0, 10).expect("10 trials");
        assert!(close(none.low, 0.0, 1e-15));
        assert!(close(none.high, 0.277_532_799_862_889, 1e-12), "{none:?}");
        // 10 of 10 mirrors it: [1 - 0.277532799862889, 1].
        let all = wilson(10, 10).expect("10 trials");
        assert!(
            close(all.low, 1.0 - 0.277_532_799_862_889, 1e-12),
            "{all:?}"
        );
        assert!(close(all.high, 1.0, 1e-15));
        assert_eq!(wilson(0, 0), None);
        assert_eq!(wilson(11, 10), None);
    }

    #[test]
    fn tallies_count_rows_on_the_margin_as_ties() {
        // At m = 0.5: 0.5 and -0.5 sit on the margin (ties), 0.6 is kept, -0.6 swapped, 0 and
        // NaN are ties. agree 1, disagree 1, tie 4, total 6.
        let decisions = [0.5, -0.5, 0.6, -0.6, 0.0, f64::NAN];
        let tallies = tallies_at(&decisions, 0.5);
        let expected = Tallies {
            agree: 1,
            disagree: 1,
            tie: 4,
        };
        assert_eq!(tallies, expected);
        // agreement = (1 + 4 / 2) / 6 = 0.5; decided 1 / 2 = 0.5; coverage 2 / 6 = 1 / 3.
        assert!(close(tallies.agreement().expect("rows"), 0.5, 1e-15));
        assert!(close(
            tallies.agreement_decided().expect("decided"),
            0.5,
            1e-15
        ));
        assert!(close(tallies.coverage().expect("rows"), 1.0 / 3.0, 1e-15));
        // At m = 0 only the zero and the NaN are ties: agree 2, disagree 2, tie 2.
        let at_zero = tallies_at(&decisions, 0.0);
        assert_eq!((at_zero.agree, at_zero.disagree, at_zero.tie), (2, 2, 2));
    }

    #[test]
    fn tallies_without_rows_are_undefined() {
        let empty = tallies_at(&[], 0.0);
        assert_eq!(empty.agreement(), None);
        assert_eq!(empty.agreement_decided(), None);
        assert_eq!(empty.coverage(), None);
        // Rows but all ties: agreement 1/2, coverage 0, decided agreement undefined.
        let ties = tallies_at(&[0.1, -0.2], 1.0);
        assert!(close(ties.agreement().expect("rows"), 0.5, 1e-15));
        assert_eq!(ties.agreement_decided(), None);
        assert!(close(ties.coverage().expect("rows"), 0.0, 1e-15));
    }

    /// `count` copies of the pair `(judge, gold)`.
    fn repeat(judge: Label, gold: Label, count: usize) -> Vec<(Label, Label)> {
        vec![(judge, gold); count]
    }

    #[test]
    fn kappa_two_by_two() {
        // Two raters, 50 items, "yes" = First, "no" = Second:
        //            gold yes  gold no
        // judge yes     20        5      (25)
        // judge no      10       15      (25)
        //              (30)     (20)
        // p_o = (20 + 15) / 50 = 0.7.
        // p_e = (25/50)(30/50) + (25/50)(20/50) = 0.3 + 0.2 = 0.5.
        // kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
        let mut pairs = repeat(Label::First, Label::First, 20);
        pairs.extend(repeat(Label::First, Label::Second, 5));
        pairs.extend(repeat(Label::Second, Label::First, 10));
        pairs.extend(repeat(Label::Second, Label::Second, 15));
        let kappa = cohen_kappa(&pairs).expect("defined");
        assert!(close(kappa, 0.4, 1e-12), "{kappa}");
    }

    #[test]
    fn kappa_three_labels() {
        // judge rows, gold columns (First, Second, Tie), 12 items:
        //          F  S  T   row
        // F        4  1  1    6
        // S        1  3  0    4
        // T        0  1  1    2
        // column   5  5  2
        // p_o = (4 + 3 + 1) / 12 = 2/3.
        // p_e = (6*5 + 4*5 + 2*2) / 144 = 54 / 144 = 3/8.
        // kappa = (2/3 - 3/8) / (1 - 3/8) = (16/24 - 9/24) / (15/24) = 7/15 = 0.4666...
        let cells = [
            (Label::First, Label::First, 4),
            (Label::First, Label::Second, 1),
            (Label::First, Label::Tie, 1),
            (Label::Second, Label::First, 1),
            (Label::Second, Label::Second, 3),
            (Label::Tie, Label::Second, 1),
            (Label::Tie, Label::Tie, 1),
        ];
        let pairs: Vec<_> = cells
            .iter()
            .flat_map(|&(judge, gold, count)| repeat(judge, gold, count))
            .collect();
        let kappa = cohen_kappa(&pairs).expect("defined");
        assert!(close(kappa, 7.0 / 15.0, 1e-12), "{kappa}");
    }

    #[test]
    fn kappa_extremes_and_undefined() {
        // Both raters always say First: p_o = 1 and p_e = 1, so kappa is 0 / 0.
        assert_eq!(cohen_kappa(&repeat(Label::First, Label::First, 5)), None);
        assert_eq!(cohen_kappa(&[]), None);
        // Perfect agreement over two labels: p_o = 1, p_e = 1/2, kappa = 1.
        let agreeing = [(Label::First, Label::First), (Label::Second, Label::Second)];
        assert!(close(cohen_kappa(&agreeing).expect("defined"), 1.0, 1e-15));
        // Always opposite: p_o = 0, p_e = 1/2, kappa = -1.
        let opposed = [(Label::First, Label::Second), (Label::Second, Label::First)];
        assert!(close(cohen_kappa(&opposed).expect("defined"), -1.0, 1e-15));
        // The judge always says First, gold is split evenly: p_o = 1/2, p_e = 1 * 1/2, kappa 0.
        let constant = [(Label::First, Label::First), (Label::First, Label::Second)];
        assert!(close(cohen_kappa(&constant).expect("defined"), 0.0, 1e-15));
    }

    /// The eight decisions of the calibration example.
    const EIGHT: [f64; 8] = [2.0, 1.5, -1.0, 1.0, 0.5, -0.5, 0.0, 3.0];

    #[test]
    fn margin_curve_by_hand() {
        // |s| = 2, 1.5, 1, 1, 0.5, 0.5, 0, 3; candidates 0, 0.5, 1, 1.5, 2, 3.
        // m     kept            swapped   ties  agreement          decided   coverage
        // 0     2 1.5 1 .5 3    -1 -.5    1     (5 + 0.5)/8 = .6875  5/7      7/8
        // 0.5   2 1.5 1 3       -1        3     (4 + 1.5)/8 = .6875  4/5      5/8
        // 1     2 1.5 3         -         5     (3 + 2.5)/8 = .6875  3/3      3/8
        // 1.5   2 3             -         6     (2 + 3)/8   = .625   2/2      2/8
        // 2     3               -         7     (1 + 3.5)/8 = .5625  1/1      1/8
        // 3     -               -         8     (0 + 4)/8   = .5     none     0
        let expected = [
            (0.0, 0.6875, Some(5.0 / 7.0), 7.0 / 8.0, 7),
            (0.5, 0.6875, Some(0.8), 5.0 / 8.0, 5),
            (1.0, 0.6875, Some(1.0), 3.0 / 8.0, 3),
            (1.5, 0.625, Some(1.0), 2.0 / 8.0, 2),
            (2.0, 0.5625, Some(1.0), 1.0 / 8.0, 1),
            (3.0, 0.5, None, 0.0, 0),
        ];
        let curve = margin_curve(&EIGHT);
        assert_eq!(curve.len(), expected.len());
        for (point, &(margin, agreement, decided_agreement, coverage, decided)) in
            curve.iter().zip(&expected)
        {
            assert!(close(point.margin, margin, 0.0), "{point:?}");
            assert!(close(point.agreement, agreement, 1e-15), "{point:?}");
            assert!(close(point.coverage, coverage, 1e-15), "{point:?}");
            assert_eq!(point.decided, decided, "{point:?}");
            match (point.agreement_decided, decided_agreement) {
                (Some(actual), Some(wanted)) => assert!(close(actual, wanted, 1e-15)),
                (actual, wanted) => assert_eq!(actual, wanted, "{point:?}"),
            }
        }
    }

    #[test]
    fn calibrate_by_hand() {
        // From the table above: decided agreement 5/7 = 0.714 at 0, 0.8 at 0.5, 1 from 1 on.
        let margin_for = |target| calibrate(&EIGHT, target).map(|point| point.margin);
        assert_eq!(margin_for(0.7), Some(0.0));
        assert_eq!(margin_for(0.75), Some(0.5));
        // 4/5 reaches 0.8 exactly: the target is inclusive.
        assert_eq!(margin_for(0.8), Some(0.5));
        assert_eq!(margin_for(0.9), Some(1.0));
        assert_eq!(margin_for(1.0), Some(1.0));
        assert_eq!(margin_for(1.01), None);
        assert_eq!(margin_for(f64::NAN), None);
        assert_eq!(calibrate(&[], 0.5), None);
        // All swapped: decided agreement is 0 at margins 0 and 1, undefined at 2.
        assert_eq!(calibrate(&[-1.0, -2.0], 0.5), None);
    }

    #[test]
    fn margin_curve_edge_inputs() {
        assert!(margin_curve(&[]).is_empty());
        // Only zeros and NaN: one point at 0, nothing decided, agreement 1/2.
        let flat = margin_curve(&[0.0, -0.0, f64::NAN]);
        assert_eq!(flat.len(), 1);
        assert_eq!(flat[0].decided, 0);
        assert!(close(flat[0].agreement, 0.5, 1e-15));
    }

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // The reference SplitMix64 seeded with 0 first returns 0xe220a8397b1dcdaf.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut random = SplitMix64::new(42);
        for _ in 0..1000 {
            assert!(random.below(7) < 7);
        }
    }

    /// The mean of `values` at `indices`; `None` when there are none.
    fn mean_at(values: &[f64], indices: &[usize]) -> Option<f64> {
        let sum: f64 = indices.iter().map(|&index| values[index]).sum();
        (!indices.is_empty()).then(|| sum / indices.len() as f64)
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let values: Vec<f64> = (0..40).map(|index| f64::from(index * index % 17)).collect();
        let statistic = |indices: &[usize]| mean_at(&values, indices);
        let first = bootstrap_interval(values.len(), 200, 7, statistic);
        let again = bootstrap_interval(values.len(), 200, 7, statistic);
        assert!(first.is_some());
        assert_eq!(first, again);
        // Different seeds draw different resamples; across four seeds at least one must differ.
        let others: Vec<_> = (8..12)
            .map(|seed| bootstrap_interval(values.len(), 200, seed, statistic))
            .collect();
        assert!(others.iter().any(|other| *other != first), "{others:?}");
    }

    #[test]
    fn bootstrap_contains_the_point_estimate() {
        // Seven ones and three zeros: the mean is 0.7, and every resample mean lies in [0, 1].
        let values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
        let interval =
            bootstrap_interval(values.len(), 1000, 3, |indices| mean_at(&values, indices))
                .expect("every resample has a mean");
        assert!(interval.contains(0.7), "{interval:?}");
        assert!(0.0 <= interval.low && interval.low < interval.high && interval.high <= 1.0);
    }

    #[test]
    fn bootstrap_uses_nearest_rank() {
        // A statistic that ignores its rows and returns 1, 2, ..., 1000 in turn.
        // Nearest rank over k = 1000 sorted values: ceil(0.025 * 1000) = 25 and
        // ceil(0.975 * 1000) = 975, so the bounds are the values 25 and 975.
        let counter = Cell::new(0_u32);
        let counting = |_: &[usize]| {
            counter.set(counter.get() + 1);
            Some(f64::from(counter.get()))
        };
        let interval = bootstrap_interval(5, 1000, 1, counting).expect("all defined");
        assert_eq!(
            interval,
            Interval {
                low: 25.0,
                high: 975.0
            }
        );
        // Only even calls give a value: 2, 4, ..., 1000, k = 500 (exactly half, still enough).
        // ceil(0.025 * 500) = ceil(12.5) = 13 -> 26; ceil(0.975 * 500) = ceil(487.5) = 488 -> 976.
        counter.set(0);
        let even = |_: &[usize]| {
            counter.set(counter.get() + 1);
            counter
                .get()
                .is_multiple_of(2)
                .then(|| f64::from(counter.get()))
        };
        let interval = bootstrap_interval(5, 1000, 1, even).expect("half defined");
        assert_eq!(
            interval,
            Interval {
                low: 26.0,
                high: 976.0
            }
        );
        // One value fewer than half (499 of 1000) is not enough.
        counter.set(0);
        let sparse = |_: &[usize]| {
            counter.set(counter.get() + 1);
            (counter.get().is_multiple_of(2) && counter.get() > 2).then_some(1.0)
        };
        assert_eq!(bootstrap_interval(5, 1000, 1, sparse), None);
    }

    #[test]
    fn bootstrap_undefined_cases() {
        assert_eq!(bootstrap_interval(0, 100, 1, |_| Some(1.0)), None);
        assert_eq!(bootstrap_interval(10, 0, 1, |_| Some(1.0)), None);
        assert_eq!(bootstrap_interval(10, 100, 1, |_| None), None);
        assert_eq!(bootstrap_interval(10, 100, 1, |_| Some(f64::NAN)), None);
    }

    #[test]
    fn histogram_edges_and_clamping() {
        // [0, 1] in 4 bins: edges 0, 0.25, 0.5, 0.75, 1.
        // -10, 0, -inf -> bin 0; 0.25 -> bin 1 (lower edge inclusive); 0.5 -> bin 2;
        // 0.99, 1 (top edge inclusive), 7, inf -> bin 3; NaN skipped. Counts 3, 1, 1, 4.
        let values = [
            -10.0,
            0.0,
            0.25,
            0.5,
            0.99,
            1.0,
            7.0,
            f64::NAN,
            f64::NEG_INFINITY,
            f64::INFINITY,
        ];
        let result = histogram(&values, 0.0, 1.0, 4);
        assert_eq!(result.edges, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(result.counts, vec![3, 1, 1, 4]);
        // Score differences over [-4, 4] in 8 bins: integer edges; each integer value sits at
        // the lower edge of its bin, and 4 falls in the last bin.
        let scores = [-4.0, -3.0, -0.5, 0.0, 0.0, 3.9, 4.0];
        let result = histogram(&scores, -4.0, 4.0, 8);
        let edges: Vec<f64> = (-4..=4).map(f64::from).collect();
        assert_eq!(result.edges, edges);
        assert_eq!(result.counts, vec![1, 1, 0, 1, 2, 0, 0, 2]);
    }

    #[test]
    fn histogram_degenerate_inputs() {
        let empty = histogram(&[1.0], 0.0, 1.0, 0);
        assert!(empty.edges.is_empty() && empty.counts.is_empty());
        // A zero-width range puts every value in the first bin.
        let flat = histogram(&[1.0, 2.0, f64::NAN], 1.0, 1.0, 2);
        assert_eq!(flat.counts, vec![2, 0]);
        // Edges that decimal fractions cannot hit exactly still agree with the counts: 0.3 and
        // 0.6 land in the bins whose lower edges are the reported edges[3] and edges[6].
        let tenths = histogram(&[0.3, 0.6], 0.0, 1.0, 10);
        for (bin, &count) in tenths.counts.iter().enumerate() {
            let inside = [0.3, 0.6]
                .iter()
                .filter(|&&value| tenths.edges[bin] <= value && value < tenths.edges[bin + 1])
                .count() as u64;
            assert_eq!(count, inside, "bin {bin}");
        }
    }

    #[test]
    fn share_of_a_whole() {
        assert_eq!(share(1, 0), None);
        assert!(close(share(1, 4).expect("whole"), 0.25, 0.0));
    }

    /// A random decision value: mostly a coarse grid (to force ties in |s|, signs and zeros
    /// included), sometimes a fine value, rarely NaN.
    fn random_decision(random: &mut SplitMix64) -> f64 {
        match random.below(10) {
            0 => f64::NAN,
            1..=3 => (random.below(2001) as f64 - 1000.0) / 250.0,
            _ => (random.below(9) as f64 - 4.0) * 0.5,
        }
    }

    #[test]
    fn margin_curve_matches_direct_tallies() {
        let mut random = SplitMix64::new(2024);
        for _ in 0..300 {
            let length = random.index_below(40);
            let decisions: Vec<f64> = (0..length).map(|_| random_decision(&mut random)).collect();
            let curve = margin_curve(&decisions);
            // The candidates are 0 and each distinct non-NaN |s|, ascending.
            let mut candidates: Vec<f64> = decisions
                .iter()
                .filter(|value| !value.is_nan())
                .map(|value| value.abs())
                .chain([0.0])
                .collect();
            candidates.sort_by(f64::total_cmp);
            candidates.dedup_by(|left, right| left.total_cmp(right) == Ordering::Equal);
            if decisions.is_empty() {
                assert!(curve.is_empty());
                continue;
            }
            let margins: Vec<f64> = curve.iter().map(|point| point.margin).collect();
            assert_eq!(margins, candidates, "{decisions:?}");
            for (index, point) in curve.iter().enumerate() {
                let direct = tallies_at(&decisions, point.margin);
                assert_eq!(
                    Some(*point),
                    CurvePoint::from_tallies(point.margin, &direct)
                );
                // Just short of the next candidate the tallies have not moved yet.
                if let Some(next) = curve.get(index + 1) {
                    let between = tallies_at(&decisions, f64::midpoint(point.margin, next.margin));
                    assert_eq!(between, direct, "{decisions:?} at {}", point.margin);
                }
            }
            let target = random.below(11) as f64 / 10.0;
            let brute = curve
                .iter()
                .copied()
                .find(|point| point.agreement_decided.is_some_and(|value| value >= target));
            assert_eq!(calibrate(&decisions, target), brute);
        }
    }
}
