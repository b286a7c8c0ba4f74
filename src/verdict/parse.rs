//! Reading a judgment out of whatever the judge wrote.
//!
//! Servers that honour `response_format` return exactly the schema, but many do not (older vLLM,
//! some proxies, models that wrap JSON in prose or code fences). The parser tries, in order: the
//! whole text as JSON; each embedded JSON object; then plain-text patterns such as
//! "Response A: 4/5".

use super::{Judgment, Rating};
use serde_json::Value;

/// Parses a judgment from a judge's answer, or says what was wrong with it.
pub fn parse_judgment(text: &str) -> Result<Judgment, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the judge returned an empty answer".into());
    }
    // The outermost object's error is the telling one; inner objects fail for lesser reasons.
    let mut first_error = None;
    for value in json_candidates(trimmed) {
        match judgment_from_json(&value) {
            Ok(judgment) => return Ok(judgment),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(judgment) = judgment_from_text(trimmed) {
        return Ok(judgment);
    }
    Err(first_error
        .unwrap_or_else(|| format!("no scores found in the answer: {}", excerpt(trimmed))))
}

/// The whole text as JSON, then every JSON object that starts at a `{`.
fn json_candidates(text: &str) -> impl Iterator<Item = Value> + '_ {
    let whole = serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object);
    let embedded = text.match_indices('{').filter_map(move |(start, _)| {
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        stream.next().and_then(Result::ok).filter(Value::is_object)
    });
    whole.into_iter().chain(embedded)
}

fn judgment_from_json(value: &Value) -> Result<Judgment, String> {
    let nested = |keys: &[&str]| keys.iter().find_map(|key| value.get(*key));
    let a = nested(&[
        "response_a",
        "a",
        "A",
        "Response A",
        "assistant_a",
        "risposta_a",
    ]);
    let b = nested(&[
        "response_b",
        "b",
        "B",
        "Response B",
        "assistant_b",
        "risposta_b",
    ]);
    match (a, b) {
        (Some(a), Some(b)) => Ok(Judgment {
            response_a: rating_from_json(a)?,
            response_b: rating_from_json(b)?,
        }),
        _ => flat_judgment(value),
    }
}

/// `{"score_a": 4, "score_b": 2, "rationale_a": "...", ...}`.
fn flat_judgment(value: &Value) -> Result<Judgment, String> {
    let rating = |label: &str| -> Result<Rating, String> {
        let score = [
            format!("score_{label}"),
            format!("{label}_score"),
            format!("rating_{label}"),
        ]
        .iter()
        .find_map(|key| value.get(key))
        .ok_or_else(|| "the JSON has no response_a/response_b scores".to_string())?;
        let rationale = [
            format!("rationale_{label}"),
            format!("{label}_rationale"),
            format!("reason_{label}"),
        ]
        .iter()
        .find_map(|key| value.get(key).and_then(Value::as_str))
        .unwrap_or_default();
        Ok(Rating {
            score: score_of(score)?,
            rationale: rationale.to_owned(),
            distribution: None,
        })
    };
    Ok(Judgment {
        response_a: rating("a")?,
        response_b: rating("b")?,
    })
}

fn rating_from_json(value: &Value) -> Result<Rating, String> {
    if value.is_number() || value.is_string() {
        return Ok(Rating {
            score: score_of(value)?,
            rationale: String::new(),
            distribution: None,
        });
    }
    let score = ["score", "rating", "grade", "punteggio"]
        .iter()
        .find_map(|key| value.get(*key))
        .ok_or_else(|| format!("a rating has no score: {}", excerpt(&value.to_string())))?;
    let rationale = [
        "rationale",
        "reason",
        "explanation",
        "justification",
        "motivazione",
    ]
    .iter()
    .find_map(|key| value.get(*key).and_then(Value::as_str))
    .unwrap_or_default();
    Ok(Rating {
        score: score_of(score)?,
        rationale: rationale.to_owned(),
        distribution: None,
    })
}

fn score_of(value: &Value) -> Result<f64, String> {
    let score = match value {
        Value::Number(number) => number.as_f64(),
        // "4", "4/5", "4 out of 5"
        Value::String(text) => text
            .trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .and_then(|digits| digits.parse::<f64>().ok()),
        _ => None,
    }
    .ok_or_else(|| format!("the score {value} is not a number"))?;
    if (1.0..=5.0).contains(&score) {
        Ok(score)
    } else {
        Err(format!("the score {score} is outside 1-5"))
    }
}

/// Plain-text answers: the first digit 1-5 shortly after "response a", "risposta a", "score a"
/// or "a:", and the same for B.
fn judgment_from_text(text: &str) -> Option<Judgment> {
    let lower = text.to_lowercase();
    let rating = |label: char| -> Option<f64> {
        let markers = [
            format!("response {label}"),
            format!("risposta {label}"),
            format!("score {label}"),
            format!("assistant {label}"),
            format!("{label}:"),
        ];
        markers.iter().find_map(|marker| {
            lower.match_indices(marker.as_str()).find_map(|(start, _)| {
                let after = &lower[start + marker.len()..];
                let window: String = after.chars().take(40).collect();
                first_score_digit(&window)
            })
        })
    };
    let (a, b) = (rating('a')?, rating('b')?);
    Some(Judgment {
        response_a: Rating {
            score: a,
            rationale: String::new(),
            distribution: None,
        },
        response_b: Rating {
            score: b,
            rationale: String::new(),
            distribution: None,
        },
    })
    .map(|mut judgment| {
        judgment.response_a.rationale = excerpt(text);
        judgment
    })
}

fn first_score_digit(window: &str) -> Option<f64> {
    let bytes = window.as_bytes();
    bytes.iter().enumerate().find_map(|(position, byte)| {
        let standalone = !bytes.get(position + 1).is_some_and(u8::is_ascii_digit)
            && (position == 0 || !bytes[position - 1].is_ascii_digit());
        (matches!(byte, b'1'..=b'5') && standalone).then(|| f64::from(byte - b'0'))
    })
}

/// Probabilities of the scores 1..5 from the candidate tokens at a score position: tokens that
/// spell a digit (with or without surrounding spaces) count for it; the rest are dropped and the
/// digits renormalised. `None` when no candidate is a score digit.
pub fn distribution_from_logprobs<'a>(
    candidates: impl IntoIterator<Item = (&'a str, f64)>,
) -> Option<[f64; 5]> {
    let mut mass = [0.0f64; 5];
    for (token, logprob) in candidates {
        if let Ok(digit @ 1..=5) = token.trim().parse::<usize>() {
            mass[digit - 1] += logprob.exp();
        }
    }
    let total: f64 = mass.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| mass.map(|m| m / total))
}

/// The expected score under a distribution over 1..5.
pub fn expected_score(distribution: &[f64; 5]) -> f64 {
    distribution
        .iter()
        .enumerate()
        .map(|(position, p)| (position as f64 + 1.0) * p)
        .sum()
}

fn excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= LIMIT {
        flat
    } else {
        format!("{}...", flat.chars().take(LIMIT).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scores(text: &str) -> (f64, f64) {
        let judgment = parse_judgment(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (judgment.response_a.score, judgment.response_b.score)
    }

    #[test]
    fn strict_json() {
        let text = r#"{"response_a": {"rationale": "Right.", "score": 5}, "response_b": {"rationale": "Wrong.", "score": 2}}"#;
        let judgment = parse_judgment(text).unwrap();
        assert_eq!(judgment.response_a.rationale, "Right.");
        assert_eq!(
            (judgment.response_a.score, judgment.response_b.score),
            (5.0, 2.0)
        );
    }

    #[test]
    fn tolerant_shapes() {
        assert_eq!(
            scores(
                "```json\n{\"response_a\": {\"score\": 4}, \"response_b\": {\"score\": \"3/5\"}}\n```"
            ),
            (4.0, 3.0)
        );
        assert_eq!(
            scores("Here you go: {\"a\": 2, \"b\": 5} Hope it helps."),
            (2.0, 5.0)
        );
        assert_eq!(scores(r#"{"score_a": 1, "score_b": 4}"#), (1.0, 4.0));
        assert_eq!(
            scores("Response A: 4/5 - good.\nResponse B: 2/5 - wrong."),
            (4.0, 2.0)
        );
        assert_eq!(
            scores("Risposta A: punteggio 3\nRisposta B: punteggio 5"),
            (3.0, 5.0)
        );
    }

    #[test]
    fn rejects_what_is_not_a_judgment() {
        assert!(parse_judgment("").is_err());
        assert!(parse_judgment("I cannot decide.").is_err());
        let error = parse_judgment(r#"{"response_a": {"score": 9}, "response_b": {"score": 1}}"#)
            .unwrap_err();
        assert!(error.contains("outside 1-5"), "{error}");
        assert!(parse_judgment(r#"{"response_a": {"rationale": "x"}"#).is_err());
    }

    #[test]
    fn distributions() {
        let distribution =
            distribution_from_logprobs([("4", -0.1f64), (" 5", -2.5), ("x", -1.0)]).unwrap();
        assert!((distribution.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let expected = expected_score(&distribution);
        assert!(expected > 4.0 && expected < 5.0, "{expected}");
        assert!(distribution_from_logprobs([("a", -0.1f64)]).is_none());
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let _ = parse_judgment(&text);
        }

        #[test]
        fn reads_back_any_valid_judgment(a in 1u8..=5, b in 1u8..=5, why in "[a-zA-Z .,]{0,80}") {
            let text = serde_json::json!({
                "response_a": {"rationale": why, "score": a},
                "response_b": {"rationale": why, "score": b}
            }).to_string();
            prop_assert_eq!(scores(&text), (f64::from(a), f64::from(b)));
        }

        #[test]
        fn expected_scores_stay_in_range(logprobs in proptest::collection::vec(-20.0f64..0.0, 5)) {
            let tokens = ["1", "2", "3", "4", "5"];
            let distribution = distribution_from_logprobs(tokens.iter().copied().zip(logprobs)).unwrap();
            let expected = expected_score(&distribution);
            prop_assert!((1.0..=5.0).contains(&expected));
        }
    }
}
