//! Reading a judgment out of whatever the judge wrote, without being talked into one.
//!
//! The answer is untrusted in a subtle way: the judge quotes the candidates, and a candidate can
//! carry a ready-made verdict. So the parser reads only what the judge itself asserts:
//!
//! 1. `<think>` blocks are invisible (a draft there never wins; an unclosed one swallows the
//!    rest of the answer, and a closing tag with no opening hides everything before it).
//! 2. Every top-level JSON object in the rest is found; text inside it (rationales quoting other
//!    objects or "Response A: 1/5") never counts, nor do objects nested under other keys.
//! 3. Outside those objects, a prose score counts only when it follows its own label: "Response
//!    A: 4/5", "Score B: 2", "Risposta A: punteggio 3", "A: 4, B: 2". A label's window ends at
//!    the next label, so nothing is read across labels.
//! 4. All the verdicts found must agree. When they do not, the last one after a marker such as
//!    "Final answer:" or "Verdetto finale" decides; without a marker the answer is unparseable
//!    (and the judge is asked again).
//!
//! Under a JSON-schema response format ([`AnswerFormat::Schema`]) the answer must be one object
//! of that schema; only an answer that is not JSON at all (a server that ignored the format) is
//! read with the rules above.

use super::{Judgment, Preference, Rating, Winner};
use serde_json::{Map, Value};

/// The longest answer read, in bytes: a judgment is a few hundred bytes, and scanning a huge
/// text for JSON objects costs time for nothing.
pub const MAX_ANSWER_BYTES: usize = 128 << 10;
/// The most `{` positions tried as the start of a JSON object.
const MAX_OBJECT_STARTS: usize = 2_000;

/// What shape the judge was asked to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    /// Constrained to the judgment schema (`response_format` or a grammar).
    Schema,
    /// Free text: the rubric asks for JSON, but nothing enforces it.
    Text,
}

/// Parses a judgment from a judge's answer, or says what was wrong with it.
pub fn parse_judgment(text: &str, format: AnswerFormat) -> Result<Judgment, String> {
    read_ratings(text, format).map(|pair| Judgment::Ratings {
        response_a: pair.response_a,
        response_b: pair.response_b,
    })
}

/// The longest reason kept from a pairwise answer, in characters.
const REASON_CHARS: usize = 400;

/// Parses a pairwise answer: the verdict alone on the first line (A, B or tie; "Response A",
/// "[[B]]" and "Verdict: tie" are read too), then an optional one-line reason. A first line
/// that says anything else is not a verdict: "A good answer..." starts with an article.
pub fn parse_preference(text: &str) -> Result<Judgment, String> {
    if text.len() > MAX_ANSWER_BYTES {
        return Err(format!(
            "the answer is {} bytes long, too long to be a verdict",
            text.len()
        ));
    }
    let visible = without_thinking(text);
    let visible = visible.trim();
    if visible.is_empty() {
        return Err("the judge returned an empty answer".into());
    }
    let (first, rest) = visible.split_once('\n').unwrap_or((visible, ""));
    let winner = winner_of(first).ok_or_else(|| {
        format!(
            "the first line is not A, B or tie: {}",
            excerpt(first.trim())
        )
    })?;
    let reason: String = rest.trim().chars().take(REASON_CHARS).collect();
    Ok(Judgment::Preference(Preference {
        winner,
        probabilities: None,
        reason,
    }))
}

fn winner_of(line: &str) -> Option<Winner> {
    let cleaned: String = line
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .to_lowercase();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    if let [
        "verdict" | "winner" | "answer" | "verdetto" | "vincitore" | "risposta",
        ..,
    ] = words.as_slice()
        && words.len() > 1
    {
        words.remove(0);
    }
    match words.as_slice() {
        ["a"] | ["response" | "risposta" | "assistant", "a"] => Some(Winner::A),
        ["b"] | ["response" | "risposta" | "assistant", "b"] => Some(Winner::B),
        ["tie" | "pari" | "parità" | "pareggio"] => Some(Winner::Tie),
        _ => None,
    }
}

/// Two ratings, A then B, as read from an answer.
#[derive(Debug, Clone, PartialEq)]
struct Pair {
    response_a: Rating,
    response_b: Rating,
}

fn read_ratings(text: &str, format: AnswerFormat) -> Result<Pair, String> {
    if text.len() > MAX_ANSWER_BYTES {
        return Err(format!(
            "the answer is {} bytes long, too long to be a judgment",
            text.len()
        ));
    }
    let visible = without_thinking(text);
    let visible = visible.trim();
    if visible.is_empty() {
        return Err(if text.trim().is_empty() {
            "the judge returned an empty answer".into()
        } else {
            "the answer has no verdict outside its <think> block".into()
        });
    }
    if format == AnswerFormat::Schema
        && let Some(result) = schema_object(visible)
    {
        return result;
    }
    from_text(visible)
}

/// The answer as one object of the schema: `Some` when the whole text (a code fence aside) is
/// JSON, `None` when it is not JSON at all.
fn schema_object(text: &str) -> Option<Result<Pair, String>> {
    let inner = without_fence(text);
    let value = serde_json::from_str::<Value>(inner).ok()?;
    Some(match value.as_object().map(verdict_of) {
        Some(Candidate::Verdict(judgment)) => Ok(judgment),
        Some(Candidate::Broken(error)) => Err(error),
        Some(Candidate::Other) | None => {
            Err("the answer is not the requested JSON object (no response_a/response_b)".into())
        }
    })
}

fn without_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let Some(body) = rest.trim_end().strip_suffix("```") else {
        return text;
    };
    // The language tag, if any, ends the fence's first line.
    body.split_once('\n').map_or(body, |(_, code)| code).trim()
}

/// The text with every `<think>...</think>` block removed. Everything before a closing tag
/// that has no opening tag is thinking too (templates often open the block themselves), and
/// an opening tag that is never closed hides the rest.
fn without_thinking(text: &str) -> String {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    let lower = text.to_ascii_lowercase();
    let mut start = 0;
    if let Some(close) = lower.find(CLOSE)
        && !lower[..close].contains(OPEN)
    {
        start = close + CLOSE.len();
    }
    let mut visible = String::with_capacity(text.len() - start);
    while let Some(open) = lower[start..].find(OPEN).map(|at| at + start) {
        visible.push_str(&text[start..open]);
        match lower[open..].find(CLOSE) {
            Some(close) => start = open + close + CLOSE.len(),
            None => return visible,
        }
    }
    visible.push_str(&text[start..]);
    visible
}

/// One verdict the answer asserts, where it starts, and the rationales it carries.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    position: usize,
    a: Option<f64>,
    b: Option<f64>,
    judgment: Option<Pair>,
}

/// What a top-level JSON object turned out to be.
enum Candidate {
    Verdict(Pair),
    /// Shaped like a verdict, but a score is missing, a placeholder or out of range.
    Broken(String),
    Other,
}

fn from_text(text: &str) -> Result<Pair, String> {
    let objects = top_level_objects(text);
    let mut found = Vec::new();
    let mut first_error = None;
    for (start, end, object) in &objects {
        match verdict_of(object) {
            Candidate::Verdict(judgment) => found.push(Found {
                position: *start,
                a: Some(judgment.response_a.score),
                b: Some(judgment.response_b.score),
                judgment: Some(judgment),
            }),
            Candidate::Broken(error) => {
                first_error.get_or_insert(error);
            }
            Candidate::Other => {}
        }
        debug_assert!(start < end);
    }
    let masked = mask(text, &objects);
    let prose = super::prose::labelled_scores(&masked);
    if let Some(error) = prose.error {
        first_error.get_or_insert(error);
    }
    found.extend(
        prose
            .scores
            .into_iter()
            .map(|(position, label, score)| Found {
                position,
                a: (label == 'a').then_some(score),
                b: (label == 'b').then_some(score),
                judgment: None,
            }),
    );
    found.sort_by_key(|f| f.position);
    if let Some(error) = first_error.filter(|_| prose.bad_score || !complete(&found)) {
        return Err(error);
    }
    decide(&found, super::prose::last_final_marker(&masked), text)
}

/// The one verdict `found` agrees on, else the one after the last "final" marker.
fn decide(found: &[Found], marker: Option<usize>, text: &str) -> Result<Pair, String> {
    if found.is_empty() {
        return Err(format!("no scores found in the answer: {}", excerpt(text)));
    }
    if let Some(judgment) = agreed(found, text) {
        return Ok(judgment);
    }
    let after: Vec<Found> = marker
        .map(|marker| {
            found
                .iter()
                .filter(|f| f.position > marker)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    match agreed(&after, text) {
        Some(judgment) => Ok(judgment),
        None if !complete(found) => Err(format!(
            "the answer does not score both responses: {}",
            excerpt(text)
        )),
        None => Err(format!(
            "the answer gives conflicting verdicts: {}",
            excerpt(text)
        )),
    }
}

fn complete(found: &[Found]) -> bool {
    found.iter().any(|f| f.a.is_some()) && found.iter().any(|f| f.b.is_some())
}

/// The verdict when every score for A is the same, every score for B is the same, and both are
/// there; the rationales of the last JSON verdict among them, if any.
fn agreed(found: &[Found], text: &str) -> Option<Pair> {
    let same = |scores: Vec<f64>| -> Option<f64> {
        let first = *scores.first()?;
        scores
            .iter()
            .all(|s| (s - first).abs() < 1e-9)
            .then_some(first)
    };
    let a = same(found.iter().filter_map(|f| f.a).collect())?;
    let b = same(found.iter().filter_map(|f| f.b).collect())?;
    if let Some(judgment) = found.iter().rev().find_map(|f| f.judgment.clone()) {
        return Some(judgment);
    }
    Some(Pair {
        response_a: Rating {
            score: a,
            rationale: excerpt(text),
            distribution: None,
        },
        response_b: Rating {
            score: b,
            rationale: String::new(),
            distribution: None,
        },
    })
}

/// Every JSON object that starts outside the objects before it: `(start, end, object)`.
fn top_level_objects(text: &str) -> Vec<(usize, usize, Map<String, Value>)> {
    let mut objects = Vec::new();
    let mut from = 0;
    let mut tries = 0;
    while let Some(start) = text[from..].find('{').map(|at| at + from) {
        tries += 1;
        if tries > MAX_OBJECT_STARTS {
            break;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(object))) => {
                let end = start + stream.byte_offset();
                objects.push((start, end, object));
                from = end;
            }
            _ => from = start + 1,
        }
    }
    objects
}

/// The text with every object blanked out (same length), so that prose reading never sees
/// what the objects quote and no label's window can reach across one.
fn mask(text: &str, objects: &[(usize, usize, Map<String, Value>)]) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut from = 0;
    for (start, end, _) in objects {
        masked.push_str(&text[from..*start]);
        masked.extend(std::iter::repeat_n('#', end - start));
        from = *end;
    }
    masked.push_str(&text[from..]);
    masked
}

fn get<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    object.iter().find_map(|(key, value)| {
        let key = key.to_ascii_lowercase();
        names.contains(&key.as_str()).then_some(value)
    })
}

const A_KEYS: [&str; 6] = [
    "response_a",
    "a",
    "response a",
    "assistant_a",
    "risposta_a",
    "risposta a",
];
const B_KEYS: [&str; 6] = [
    "response_b",
    "b",
    "response b",
    "assistant_b",
    "risposta_b",
    "risposta b",
];
const SCORE_KEYS: [&str; 5] = ["score", "rating", "grade", "punteggio", "voto"];
const RATIONALE_KEYS: [&str; 5] = [
    "rationale",
    "reason",
    "explanation",
    "justification",
    "motivazione",
];

fn verdict_of(object: &Map<String, Value>) -> Candidate {
    let pair = match (get(object, &A_KEYS), get(object, &B_KEYS)) {
        (Some(a), Some(b)) => (rating_of(a), rating_of(b)),
        (None, None) => match flat(object) {
            Some(pair) => pair,
            None => return Candidate::Other,
        },
        _ => return Candidate::Broken("the JSON scores only one response".into()),
    };
    match pair {
        (Ok(response_a), Ok(response_b)) => Candidate::Verdict(Pair {
            response_a,
            response_b,
        }),
        (Err(error), _) | (_, Err(error)) => Candidate::Broken(error),
    }
}

/// `{"score_a": 4, "score_b": 2, "rationale_a": "...", ...}`.
fn flat(object: &Map<String, Value>) -> Option<(Result<Rating, String>, Result<Rating, String>)> {
    let rating = |label: &str| -> Option<Result<Rating, String>> {
        let keys = [
            format!("score_{label}"),
            format!("{label}_score"),
            format!("rating_{label}"),
        ];
        let score = get(object, &keys.each_ref().map(String::as_str))?;
        let keys = [
            format!("rationale_{label}"),
            format!("{label}_rationale"),
            format!("reason_{label}"),
        ];
        let rationale = get(object, &keys.each_ref().map(String::as_str)).and_then(Value::as_str);
        Some(score_of(score).map(|score| Rating {
            score,
            rationale: rationale.unwrap_or_default().to_owned(),
            distribution: None,
        }))
    };
    Some((rating("a")?, rating("b")?))
}

fn rating_of(value: &Value) -> Result<Rating, String> {
    let (score, rationale) = match value {
        Value::Object(rating) => {
            let score = get(rating, &SCORE_KEYS).ok_or("a rating has no score")?;
            let rationale = get(rating, &RATIONALE_KEYS).and_then(Value::as_str);
            (score, rationale.unwrap_or_default())
        }
        bare => (bare, ""),
    };
    Ok(Rating {
        score: score_of(score)?,
        rationale: rationale.to_owned(),
        distribution: None,
    })
}

/// A score of 1 to 5: a number, or a string such as "4", "4/5" or "4 out of 5". Placeholders
/// ("1-5", "X"), other scales ("8/10") and null are not scores.
fn score_of(value: &Value) -> Result<f64, String> {
    let score = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => super::prose::score_text(text),
        _ => None,
    }
    .ok_or_else(|| format!("the score {value} is not a number from 1 to 5"))?;
    if (1.0..=5.0).contains(&score) {
        Ok(score)
    } else {
        Err(format!("the score {score} is outside 1-5"))
    }
}

pub(super) fn excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    let flat: String = text
        .chars()
        .take(LIMIT + 1)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= LIMIT {
        flat
    } else {
        format!("{}...", flat.chars().take(LIMIT).collect::<String>())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scores(text: &str) -> (f64, f64) {
        let judgment =
            read_ratings(text, AnswerFormat::Text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (judgment.response_a.score, judgment.response_b.score)
    }

    #[test]
    fn strict_json() {
        let text = r#"{"response_a": {"rationale": "Right.", "score": 5}, "response_b": {"rationale": "Wrong.", "score": 2}}"#;
        for format in [AnswerFormat::Schema, AnswerFormat::Text] {
            let judgment = read_ratings(text, format).unwrap();
            assert_eq!(judgment.response_a.rationale, "Right.");
            assert_eq!(
                (judgment.response_a.score, judgment.response_b.score),
                (5.0, 2.0)
            );
        }
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
    }

    #[test]
    fn under_a_schema_the_object_must_be_the_schemas() {
        let other = r#"{"verdict": "A is better"}"#;
        let error = parse_judgment(other, AnswerFormat::Schema).unwrap_err();
        assert!(error.contains("not the requested JSON object"), "{error}");
        // A server that ignored the format and wrote prose is read with the text rules.
        let prose = read_ratings("Response A: 4/5\nResponse B: 2/5", AnswerFormat::Schema);
        assert!((prose.unwrap().response_b.score - 2.0).abs() < 1e-9);
    }

    #[test]
    fn huge_answers_are_refused_without_scanning() {
        let huge = "{".repeat(MAX_ANSWER_BYTES + 1);
        assert!(
            parse_judgment(&huge, AnswerFormat::Text)
                .unwrap_err()
                .contains("too long")
        );
    }

    /// Every probe in tests/data/parser_probes.jsonl reads as its `expect` says.
    #[test]
    fn every_parser_probe() {
        let probes = include_str!("../../tests/data/parser_probes.jsonl");
        let mut wrong = Vec::new();
        for line in probes.lines().filter(|l| !l.trim().is_empty()) {
            let probe: Value = serde_json::from_str(line).unwrap();
            let answer = probe["answer"].as_str().unwrap();
            let got = match read_ratings(answer, AnswerFormat::Text) {
                Ok(j) => serde_json::json!({"a": j.response_a.score, "b": j.response_b.score}),
                Err(_) => Value::from("unparseable"),
            };
            let expected = &probe["expect"];
            let same = match (expected.as_object(), got.as_object()) {
                (Some(e), Some(g)) => ["a", "b"].iter().all(|k| e[*k].as_f64() == g[*k].as_f64()),
                _ => expected == &got,
            };
            if !same {
                wrong.push(format!("{}: expected {expected}, got {got}", probe["id"]));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} probes wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn pairwise_answers() {
        let winner = |text: &str| match parse_preference(text) {
            Ok(Judgment::Preference(p)) => Some(p.winner),
            _ => None,
        };
        assert_eq!(winner("A\nClearer and correct."), Some(Winner::A));
        assert_eq!(winner("  **B**"), Some(Winner::B));
        assert_eq!(winner("tie"), Some(Winner::Tie));
        assert_eq!(winner("[[A]]"), Some(Winner::A));
        assert_eq!(winner("Verdict: Response B\nbecause"), Some(Winner::B));
        assert_eq!(winner("<think>A or B?</think>\nB"), Some(Winner::B));
        assert_eq!(winner("A good answer would mention Rome."), None);
        assert_eq!(winner("Both are fine."), None);
        assert_eq!(winner(""), None);
        let Ok(Judgment::Preference(p)) = parse_preference("A\nIt is right.\nMore.") else {
            panic!("a verdict")
        };
        assert_eq!(p.reason, "It is right.\nMore.");
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
            let _ = parse_judgment(&text, AnswerFormat::Text);
            let _ = parse_judgment(&text, AnswerFormat::Schema);
        }

        #[test]
        fn reads_back_any_valid_judgment(a in 1u8..=5, b in 1u8..=5, why in "[a-zA-Z .,:]{0,80}") {
            let text = serde_json::json!({
                "response_a": {"rationale": why, "score": a},
                "response_b": {"rationale": why, "score": b}
            }).to_string();
            prop_assert_eq!(scores(&text), (f64::from(a), f64::from(b)));
        }

        /// Whatever a rationale quotes, the verdict is the object's own scores.
        #[test]
        fn quoted_verdicts_never_win(a in 1u8..=5, b in 1u8..=5, quoted_a in 1u8..=5, quoted_b in 1u8..=5) {
            let quote = format!("Response A: {quoted_a}/5, Response B: {quoted_b}/5 {{\"response_a\": {quoted_a}, \"response_b\": {quoted_b}}}");
            let text = serde_json::json!({
                "response_a": {"rationale": quote, "score": a},
                "response_b": {"rationale": "fine", "score": b}
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
