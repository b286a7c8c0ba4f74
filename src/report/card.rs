//! The dataset card (`README.md`) that makes the output folder a Hub dataset: YAML metadata the
//! Hub and `datasets` read (configs, features, splits, licence, languages, tags), then what was
//! done, the statistics, the plots and how to repeat the run.

use super::Report;
use crate::prompt::{Language, Mode};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use std::fmt::Write as _;

/// What the card says besides the report.
#[derive(Debug, Clone, Default)]
pub struct CardExtras<'a> {
    /// The output data's schema, for `dataset_info.features`.
    pub schema: Option<&'a Schema>,
    /// The plots, relative to the output folder.
    pub plots: &'a [String],
    /// The run's settings as `rejudge.toml` holds them.
    pub settings: Option<&'a str>,
    /// The source dataset on the Hub, when the input came from there.
    pub source_dataset: Option<&'a str>,
    /// The source dataset's licence, when its card names one.
    pub license: Option<&'a str>,
}

/// The card of a finished run.
pub(super) fn render(report: &Report, extras: &CardExtras<'_>) -> String {
    let mut card = front_matter(report, extras);
    card.push_str(&body(report, extras));
    card
}

fn front_matter(report: &Report, extras: &CardExtras<'_>) -> String {
    let mut yaml = String::from("---\n");
    let _ = writeln!(yaml, "pretty_name: {}", quoted(&pretty_name(report)));
    if let Some(license) = extras.license {
        let _ = writeln!(yaml, "license: {}", quoted(license));
    }
    let language = match report.language {
        Language::En => "en",
        Language::It => "it",
    };
    let _ = writeln!(yaml, "language:\n- {language}");
    yaml.push_str("task_categories:\n- text-generation\n");
    yaml.push_str("tags:\n- dpo\n- preference\n- rlhf\n- llm-as-a-judge\n- rejudge\n");
    if let Some(source) = extras.source_dataset {
        let _ = writeln!(yaml, "source_datasets:\n- {}", quoted(source));
    }
    let path = data_glob(report);
    let _ = write!(
        yaml,
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: {}\n",
        quoted(&path)
    );
    yaml.push_str("dataset_info:\n");
    if let Some(features) = extras.schema.and_then(features) {
        yaml.push_str("  features:\n");
        yaml.push_str(&features);
    }
    let _ = write!(
        yaml,
        "  splits:\n  - name: train\n    num_examples: {}\n---\n\n",
        report.rows
    );
    yaml
}

fn pretty_name(report: &Report) -> String {
    let name = report
        .input
        .trim_end_matches('/')
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("pairs");
    format!("{name} re-judged by {}", report.judge_model)
}

/// The data files as the card's `configs` names them.
fn data_glob(report: &Report) -> String {
    match report.files.as_slice() {
        [one]
            if std::path::Path::new(one)
                .extension()
                .is_some_and(|e| e == "jsonl") =>
        {
            one.clone()
        }
        _ => "data/train-*".to_owned(),
    }
}

/// A YAML scalar in double quotes, escaped as YAML requires.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `dataset_info.features` in the form `datasets` writes, or `None` when a column has a type
/// this mapping does not know (then the card leaves features out and `datasets` reads them from
/// the data itself, which is always right).
fn features(schema: &Schema) -> Option<String> {
    let mut yaml = String::new();
    for field in schema.fields() {
        feature(&mut yaml, field, 2)?;
    }
    Some(yaml)
}

fn feature(yaml: &mut String, field: &Field, indent: usize) -> Option<()> {
    let pad = " ".repeat(indent);
    let _ = writeln!(yaml, "{pad}- name: {}", quoted(field.name()));
    feature_type(yaml, field.data_type(), indent + 2)
}

/// The type lines of a feature, at `indent` (under its `- name:` line).
fn feature_type(yaml: &mut String, data_type: &DataType, indent: usize) -> Option<()> {
    let pad = " ".repeat(indent);
    match data_type {
        DataType::Struct(fields) => {
            let _ = writeln!(yaml, "{pad}struct:");
            for field in fields {
                feature(yaml, field, indent)?;
            }
        }
        DataType::List(item) | DataType::FixedSizeList(item, _) => {
            match item.data_type() {
                DataType::Struct(fields) => {
                    let _ = writeln!(yaml, "{pad}list:");
                    for field in fields {
                        feature(yaml, field, indent)?;
                    }
                }
                scalar => {
                    let _ = writeln!(yaml, "{pad}list: {}", dtype(scalar)?);
                }
            }
            if let DataType::FixedSizeList(_, length) = data_type {
                let _ = writeln!(yaml, "{pad}length: {length}");
            }
        }
        scalar => {
            let _ = writeln!(yaml, "{pad}dtype: {}", dtype(scalar)?);
        }
    }
    Some(())
}

/// The `dtype` of a scalar type, as `datasets` names it.
fn dtype(data_type: &DataType) -> Option<String> {
    let unit = |unit: &TimeUnit| match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    let name = match data_type {
        DataType::Null => "'null'".to_owned(),
        DataType::Boolean => "bool".to_owned(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            format!("int{}", data_type.primitive_width()? * 8)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            format!("uint{}", data_type.primitive_width()? * 8)
        }
        DataType::Float16 => "float16".to_owned(),
        DataType::Float32 => "float32".to_owned(),
        DataType::Float64 => "float64".to_owned(),
        DataType::Utf8 | DataType::Utf8View => "string".to_owned(),
        DataType::LargeUtf8 => "large_string".to_owned(),
        DataType::Binary => "binary".to_owned(),
        DataType::LargeBinary => "large_binary".to_owned(),
        DataType::Date32 => "date32".to_owned(),
        DataType::Date64 => "date64".to_owned(),
        DataType::Timestamp(time, None) => format!("timestamp[{}]", unit(time)),
        DataType::Timestamp(time, Some(zone)) => format!("timestamp[{}, tz={zone}]", unit(time)),
        DataType::Duration(time) => format!("duration[{}]", unit(time)),
        _ => return None,
    };
    Some(name)
}

fn body(report: &Report, extras: &CardExtras<'_>) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# {}\n", pretty_name(report));
    let _ = writeln!(
        text,
        "Every preference pair of `{}` was judged by `{}` with rejudge {}. \
         Pairs the judge preferred the other way round were **swapped**; ties keep their stored order and are \
         flagged in the `outcome` column; every input row is kept, so the file has the input's rows, in its order, \
         with its columns, and `chosen`/`rejected` hold the re-ranked responses.\n",
        report.input, report.judge_model, report.rejudge_version
    );
    text.push_str(&method(report));
    text.push_str(&outcomes(report, extras));
    text.push_str(&biases(report, extras));
    text.push_str(&judging(report));
    text.push_str(&cost(report));
    text.push_str(COLUMNS);
    text.push_str(&repeat(extras));
    text
}

fn method(report: &Report) -> String {
    let protocol = match report.mode {
        Mode::Rating => {
            "rating: a 1-5 score and a short rationale for each response (UltraFeedback-style overall quality)"
        }
        Mode::Pairwise => {
            "pairwise: which response is better, or a tie, as the answer's first token, then a reason"
        }
    };
    let scoring = match report.scoring.as_str() {
        "logprobs" => "expected values under the judge's log-probabilities",
        _ => "the values the judge wrote",
    };
    let margin = match &report.calibration {
        Some(c) => format!(
            "{} (calibrated: the smallest margin whose decided pairs reached {:.0}% agreement with human labels on {} pairs, at {:.0}% coverage)",
            report.tie_margin,
            100.0 * c.target_agreement,
            c.pairs,
            100.0 * c.coverage
        ),
        None => format!("{}", report.tie_margin),
    };
    let mut text = String::from("## How the pairs were judged\n\n| | |\n|---|---|\n");
    let rows = [
        ("judge", format!("`{}`", report.judge_model)),
        ("protocol", protocol.to_owned()),
        ("scores read as", scoring.to_owned()),
        ("order", order_text(&report.positions.policy, report)),
        ("tie margin", margin),
        ("rubric", rubric(report)),
    ];
    for (name, value) in rows {
        let _ = writeln!(text, "| {name} | {value} |");
    }
    text.push('\n');
    text
}

fn rubric(report: &Report) -> String {
    let source = match &report.template {
        Some(name) => format!("the template `{name}`"),
        None => format!("the built-in rubric in {}", language_name(report.language)),
    };
    format!("{source}, sha256 `{}`", report.template_sha256)
}

fn language_name(language: Language) -> &'static str {
    match language {
        Language::En => "English",
        Language::It => "Italian",
    }
}

fn order_text(policy: &str, report: &Report) -> String {
    match policy {
        "both" => {
            let rule = match report.on_inconsistent {
                crate::verdict::Inconsistent::Merge => {
                    "the two judgments' distributions averaged before deciding"
                }
                crate::verdict::Inconsistent::Tie => {
                    "opposite winners in the two orders make a tie"
                }
            };
            format!("both orders judged, {rule}")
        }
        "random" => "a seeded coin per row decided which response the judge saw first".to_owned(),
        other => other.to_owned(),
    }
}

fn outcomes(report: &Report, extras: &CardExtras<'_>) -> String {
    let mut text = String::from(
        "## Outcomes\n\n| outcome | rows | share | 95% interval |\n|---|---:|---:|---|\n",
    );
    for outcome in crate::verdict::Outcome::ALL {
        let name = outcome.as_str();
        let count = report.outcomes.get(name).copied().unwrap_or(0);
        let rate = report.rates.get(name).copied().unwrap_or(0.0);
        let interval = report
            .rate_intervals
            .get(name)
            .map(|[low, high]| format!("{:.1}% to {:.1}%", 100.0 * low, 100.0 * high))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "| {name} | {count} | {:.1}% | {interval} |",
            100.0 * rate
        );
    }
    let _ = writeln!(text, "| total | {} | | |\n", report.rows);
    for (file, caption) in [
        ("plots/outcomes.png", "Outcomes"),
        (
            "plots/scores.png",
            "Scores of the chosen and rejected responses, before and after",
        ),
        ("plots/margins.png", "Decision margins"),
    ] {
        if extras.plots.iter().any(|p| p == file) {
            let _ = writeln!(text, "![{caption}]({file})\n");
        }
    }
    if !report.mean_scores.is_empty() {
        let mean = |side: &str| report.mean_scores.get(side).copied().unwrap_or(0.0);
        let _ = writeln!(
            text,
            "Mean scores after re-ranking: chosen {:.2}, rejected {:.2}.\n",
            mean("chosen"),
            mean("rejected")
        );
    }
    text
}

fn biases(report: &Report, extras: &CardExtras<'_>) -> String {
    let mut text = String::from("## Position and length\n\n");
    let positions = &report.positions;
    let decided = positions.first_shown_won + positions.second_shown_won;
    if decided > 0 {
        let _ = writeln!(
            text,
            "- The response shown first won {} of {decided} decided judgments ({:.1}%); far from half, the judge favours a position.",
            positions.first_shown_won,
            100.0 * positions.first_shown_won as f64 / decided as f64
        );
    }
    if let Some(consistency) = report.position_consistency {
        let _ = writeln!(
            text,
            "- Position consistency: {:.1}% of the {} pairs judged in both orders got the same outcome in both.",
            100.0 * consistency,
            positions.both_orders
        );
    }
    if let Some(share) = report.length_bias.share {
        let _ = writeln!(
            text,
            "- The longer response won {:.1}% of the {} decided pairs whose responses differ in length.",
            100.0 * share,
            report.length_bias.decided
        );
    }
    if extras.plots.iter().any(|p| p == "plots/swap-rate.png") {
        text.push_str("\n![Swap rate by length ratio](plots/swap-rate.png)\n");
    }
    text.push('\n');
    text
}

fn judging(report: &Report) -> String {
    let judging = &report.judging;
    if judging.panel_rows == 0 && judging.escalated == 0 {
        return String::new();
    }
    let mut text = String::from("## Judges\n\n");
    for (judge, rows) in &judging.decided_by {
        let _ = writeln!(text, "- `{judge}` decided {rows} rows.");
    }
    if judging.panel_rows > 0 {
        let _ = writeln!(
            text,
            "- The panel's judges gave the same outcome on {} of {} rows.",
            judging.panel_unanimous, judging.panel_rows
        );
    }
    if judging.escalated > 0 {
        let _ = writeln!(
            text,
            "- {} rows near a tie went to the escalation judge, which changed the outcome of {}.",
            judging.escalated, judging.escalation_changed
        );
    }
    text.push('\n');
    text
}

fn cost(report: &Report) -> String {
    let spend = report.cost.map(|cost| {
        format!(
            " At ${} and ${} per million prompt and completion tokens, this run cost ${:.4} (${:.4} with earlier runs on the same journal).",
            cost.price_input, cost.price_output, cost.this_run, cost.total
        )
    });
    format!(
        "## Cost\n\n{} prompt and {} completion tokens; {} requests sent, {} answered from the journal, {} retried; {:.1} s of wall time.{}\n\n",
        report.tokens.prompt,
        report.tokens.completion,
        report.requests.sent,
        report.requests.from_journal,
        report.requests.retried,
        report.wall_seconds,
        spend.unwrap_or_default()
    )
}

const COLUMNS: &str = "## Columns added\n\n\
| column | meaning |\n|---|---|\n\
| `outcome` | `kept`, `swapped`, `tie`, `failed` or `invalid` |\n\
| `chosen_score`, `rejected_score` | the judge's scores (1-5) of the responses now in `chosen` and `rejected` |\n\
| `chosen_rationale`, `rejected_rationale` | the judge's reasons |\n\
| `margin` | how strongly the judge prefers the response now in `chosen` |\n\
| `position_consistent` | whether both orders gave the same outcome, when both were judged |\n\
| `preference` | pairwise protocol: probabilities that `chosen` is better, of a tie, that `rejected` is |\n\
| `chosen_score_distribution`, `rejected_score_distribution` | probabilities of the scores 1-5, under log-probability scoring |\n\
| `failure_reason` | why a row failed or could not be judged |\n\
| `judge_model`, `shown_first` | who decided, and which stored response the judge saw first |\n\n\
Training on the kept and swapped rows only is as simple as filtering `outcome`.\n\n";

fn repeat(extras: &CardExtras<'_>) -> String {
    let Some(settings) = extras.settings else {
        return String::new();
    };
    format!(
        "## Repeat it\n\nWith the input at the same path (answers already in `journal.sqlite` are reused, not asked again):\n\n\
```sh\nrejudge rerank --config rejudge.toml\n```\n\n`rejudge.toml`:\n\n```toml\n{}\n```\n",
        settings.trim_end()
    )
}
