//! The columns rejudge adds to every row, defined here and nowhere else.

use super::{Rating, Verdict};
use arrow_array::ArrayRef;
use arrow_array::builder::{FixedSizeListBuilder, Float64Builder, StringBuilder};
use arrow_schema::{DataType, Field, Fields};
use std::sync::Arc;

/// Probabilities of the scores 1..5.
const SCORES: i32 = 5;

/// The added columns, in output order.
pub fn fields() -> Fields {
    let distribution = || {
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float64, true)),
            SCORES,
        )
    };
    Fields::from(vec![
        Field::new("chosen_score", DataType::Float64, true),
        Field::new("rejected_score", DataType::Float64, true),
        Field::new("chosen_rationale", DataType::Utf8, true),
        Field::new("rejected_rationale", DataType::Utf8, true),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("failure_reason", DataType::Utf8, true),
        Field::new("judge_model", DataType::Utf8, true),
        Field::new("shown_first", DataType::Utf8, true),
        Field::new("chosen_score_distribution", distribution(), true),
        Field::new("rejected_score_distribution", distribution(), true),
    ])
}

/// Builds the added columns of one batch from its verdicts, in the order of [`fields`].
pub struct VerdictColumns {
    scores: [Float64Builder; 2],
    rationales: [StringBuilder; 2],
    outcome: StringBuilder,
    reason: StringBuilder,
    judge_model: StringBuilder,
    shown_first: StringBuilder,
    distributions: [FixedSizeListBuilder<Float64Builder>; 2],
}

impl VerdictColumns {
    /// Builders for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let distribution = || {
            FixedSizeListBuilder::with_capacity(Float64Builder::new(), SCORES, rows)
                .with_field(Field::new("item", DataType::Float64, true))
        };
        VerdictColumns {
            scores: [
                Float64Builder::with_capacity(rows),
                Float64Builder::with_capacity(rows),
            ],
            rationales: [StringBuilder::new(), StringBuilder::new()],
            outcome: StringBuilder::new(),
            reason: StringBuilder::new(),
            judge_model: StringBuilder::new(),
            shown_first: StringBuilder::new(),
            distributions: [distribution(), distribution()],
        }
    }

    /// Appends one row.
    pub fn push(&mut self, verdict: &Verdict) {
        for (slot, rating) in [&verdict.chosen, &verdict.rejected].into_iter().enumerate() {
            self.push_rating(slot, rating.as_ref());
        }
        self.outcome.append_value(verdict.outcome.as_str());
        self.reason.append_option(verdict.reason.as_deref());
        self.judge_model.append_value(&verdict.judge_model);
        self.shown_first
            .append_option(verdict.shown_first.map(super::ShownFirst::as_str));
    }

    fn push_rating(&mut self, slot: usize, rating: Option<&Rating>) {
        self.scores[slot].append_option(rating.map(|r| r.score));
        self.rationales[slot].append_option(rating.map(|r| r.rationale.as_str()));
        let distribution = &mut self.distributions[slot];
        match rating.and_then(|r| r.distribution) {
            Some(probabilities) => {
                distribution.values().append_slice(&probabilities);
                distribution.append(true);
            }
            None => {
                distribution.values().append_nulls(SCORES as usize);
                distribution.append(false);
            }
        }
    }

    /// The columns, in the order of [`fields`].
    pub fn finish(mut self) -> Vec<ArrayRef> {
        let [chosen_score, rejected_score] = &mut self.scores;
        let [chosen_rationale, rejected_rationale] = &mut self.rationales;
        let [chosen_distribution, rejected_distribution] = &mut self.distributions;
        vec![
            Arc::new(chosen_score.finish()),
            Arc::new(rejected_score.finish()),
            Arc::new(chosen_rationale.finish()),
            Arc::new(rejected_rationale.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.judge_model.finish()),
            Arc::new(self.shown_first.finish()),
            Arc::new(chosen_distribution.finish()),
            Arc::new(rejected_distribution.finish()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{DecisionPolicy, Outcome, ShownFirst};

    #[test]
    fn columns_match_their_fields() {
        let rating = |score| Rating {
            score,
            rationale: "r".into(),
            distribution: Some([0.0, 0.0, 0.5, 0.5, 0.0]),
        };
        let mut columns = VerdictColumns::with_capacity(2);
        let swapped = Verdict::decide(
            rating(2.0),
            rating(4.0),
            &DecisionPolicy::default(),
            ShownFirst::Chosen,
            "judge".into(),
        );
        assert_eq!(swapped.outcome, Outcome::Swapped);
        assert_eq!(swapped.chosen.as_ref().map(|r| r.score), Some(4.0));
        columns.push(&swapped);
        columns.push(&Verdict::invalid("chosen is null".into(), "judge".into()));
        let arrays = columns.finish();
        let batch = arrow_array::RecordBatch::try_new(
            Arc::new(arrow_schema::Schema::new(fields())),
            arrays,
        )
        .expect("the arrays have the fields' types");
        assert_eq!(batch.num_rows(), 2);
    }
}
