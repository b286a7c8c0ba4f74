//! The columns rejudge adds to every row, defined here and nowhere else.

use super::{Rating, Verdict};
use arrow_array::ArrayRef;
use arrow_array::builder::{BooleanBuilder, FixedSizeListBuilder, Float64Builder, StringBuilder};
use arrow_schema::{DataType, Field, Fields};
use std::sync::Arc;

/// Probabilities of the scores 1..5.
const SCORES: i32 = 5;
/// Probabilities that the chosen response is better, that they tie, that the rejected one is.
const PREFERENCES: i32 = 3;

fn probabilities(size: i32) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, true)), size)
}

/// The added columns, in output order.
pub fn fields() -> Fields {
    let distribution = || probabilities(SCORES);
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
        Field::new("margin", DataType::Float64, true),
        Field::new("position_consistent", DataType::Boolean, true),
        Field::new("preference", probabilities(PREFERENCES), true),
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
    margin: Float64Builder,
    consistent: BooleanBuilder,
    preference: FixedSizeListBuilder<Float64Builder>,
}

fn list_builder(size: i32, rows: usize) -> FixedSizeListBuilder<Float64Builder> {
    FixedSizeListBuilder::with_capacity(Float64Builder::new(), size, rows).with_field(Field::new(
        "item",
        DataType::Float64,
        true,
    ))
}

fn push_list(builder: &mut FixedSizeListBuilder<Float64Builder>, values: Option<&[f64]>) {
    match values {
        Some(values) => {
            builder.values().append_slice(values);
            builder.append(true);
        }
        None => {
            let size = usize::try_from(builder.value_length()).unwrap_or(0);
            builder.values().append_nulls(size);
            builder.append(false);
        }
    }
}

impl VerdictColumns {
    /// Builders for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let distribution = || list_builder(SCORES, rows);
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
            margin: Float64Builder::with_capacity(rows),
            consistent: BooleanBuilder::with_capacity(rows),
            preference: list_builder(PREFERENCES, rows),
        }
    }

    /// Appends one row.
    pub fn push(&mut self, verdict: &Verdict) {
        // A pairwise verdict has one reason, for the comparison: it goes with the winner.
        let reason = verdict
            .preference
            .as_ref()
            .map(|(_, reason)| reason.as_str());
        self.push_rating(0, verdict.chosen.as_ref(), reason);
        self.push_rating(1, verdict.rejected.as_ref(), None);
        self.outcome.append_value(verdict.outcome.as_str());
        self.reason.append_option(verdict.reason.as_deref());
        self.judge_model.append_value(&verdict.judge_model);
        self.shown_first
            .append_option(verdict.shown_first.map(super::ShownFirst::as_str));
        self.margin.append_option(verdict.margin);
        self.consistent.append_option(verdict.position_consistent());
        let preference = verdict.preference.as_ref().map(|(p, _)| p.as_slice());
        push_list(&mut self.preference, preference);
    }

    fn push_rating(&mut self, slot: usize, rating: Option<&Rating>, reason: Option<&str>) {
        self.scores[slot].append_option(rating.map(|r| r.score));
        let rationale = rating.map(|r| r.rationale.as_str()).or(reason);
        self.rationales[slot].append_option(rationale);
        let distribution = rating.and_then(|r| r.distribution);
        push_list(
            &mut self.distributions[slot],
            distribution.as_ref().map(<[f64; 5]>::as_slice),
        );
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
            Arc::new(self.margin.finish()),
            Arc::new(self.consistent.finish()),
            Arc::new(self.preference.finish()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{DecisionPolicy, Opinion, Outcome};

    #[test]
    fn columns_match_their_fields() {
        let rating = |score| Rating {
            score,
            rationale: "r".into(),
            distribution: Some([0.0, 0.0, 0.5, 0.5, 0.0]),
        };
        let mut columns = VerdictColumns::with_capacity(2);
        let opinion = Opinion::Ratings {
            chosen: rating(2.0),
            rejected: rating(4.0),
        };
        let swapped = Verdict::decide(
            vec![(true, opinion)],
            &DecisionPolicy::default(),
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
