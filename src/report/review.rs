//! `review.html`: one self-contained page with the rows a person should look at before trusting
//! a relabel (every swapped and tied row, failures, and a sample of the kept ones), side by side
//! with the judge's scores and reasons, filterable by outcome and searchable.
//!
//! The page is `review.html` (the template beside this file) with the rows written into a JSON
//! script block. The page's code puts every piece of dataset text into the document as text,
//! never as markup, and its Content-Security-Policy allows no network at all.

use crate::dataset::{Conversation, Turn};
use crate::verdict::{Outcome, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

const TEMPLATE: &str = include_str!("review.html");
const TOKEN: &str = "__REVIEW_DATA__";
/// Rows that are not kept (swapped, tie, failed, invalid) shown at most: beyond a few thousand
/// nobody reviews row by row, and the page must open quickly.
const MOST_FLAGGED: usize = 5_000;
/// Kept rows shown at most: enough to check that the judge's agreements look right too.
const MOST_KEPT: usize = 200;
/// The longest text kept per field; the page shows long texts folded anyway.
const LONGEST_TEXT: usize = 20_000;

/// One row as the page shows it: the responses in their re-ranked places.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct ReviewRow {
    index: u64,
    outcome: String,
    prompt: String,
    system: Option<String>,
    history: Vec<Turn>,
    chosen: String,
    rejected: String,
    chosen_score: Option<f64>,
    rejected_score: Option<f64>,
    chosen_rationale: Option<String>,
    rejected_rationale: Option<String>,
    failure_reason: Option<String>,
    shown_first: Option<String>,
    margin: Option<f64>,
}

/// The rows of a run worth reviewing, collected as they finish.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Review {
    flagged: Vec<ReviewRow>,
    kept: Vec<ReviewRow>,
    omitted: u64,
}

impl Review {
    /// Offers one finished row; it is kept while there is room for its kind.
    pub fn push(&mut self, index: u64, conversation: Option<&Conversation>, verdict: &Verdict) {
        let (list, room) = if verdict.outcome == Outcome::Kept {
            (&mut self.kept, MOST_KEPT)
        } else {
            (&mut self.flagged, MOST_FLAGGED)
        };
        if list.len() >= room {
            self.omitted += 1;
            return;
        }
        list.push(review_row(index, conversation, verdict));
    }

    /// Adds another review's rows (a shard's), as far as there is room.
    pub fn merge(&mut self, other: &Review) {
        for (mine, theirs, room) in [
            (&mut self.flagged, &other.flagged, MOST_FLAGGED),
            (&mut self.kept, &other.kept, MOST_KEPT),
        ] {
            let fits = room.saturating_sub(mine.len()).min(theirs.len());
            mine.extend(theirs[..fits].iter().cloned());
            self.omitted += (theirs.len() - fits) as u64;
        }
        self.omitted += other.omitted;
    }

    /// Writes `review.html` into `folder`.
    pub fn write(&self, folder: &Path, about: &About<'_>) -> Result<(), super::ReportError> {
        let mut rows: Vec<&ReviewRow> = self.flagged.iter().chain(&self.kept).collect();
        rows.sort_by_key(|row| row.index);
        let generated = httpdate::fmt_http_date(std::time::SystemTime::now());
        let document = Document {
            title: "Re-ranked preference pairs",
            input: about.input,
            judge: about.judge,
            rejudge_version: env!("CARGO_PKG_VERSION"),
            generated_at: Some(&generated),
            summary: Summary {
                rows: about.rows,
                outcomes: about.outcomes,
            },
            rows_included: rows.len(),
            rows_omitted: self.omitted,
            rows,
        };
        let page = TEMPLATE.replacen(TOKEN, &embedded(&document), 1);
        super::write_atomically(&folder.join("review.html"), page.as_bytes())
    }
}

/// What the page says about the run as a whole.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// The input, as the report names it.
    pub input: &'a str,
    /// The judge.
    pub judge: &'a str,
    /// Rows in the run.
    pub rows: u64,
    /// Rows per outcome.
    pub outcomes: &'a BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Document<'a> {
    title: &'a str,
    input: &'a str,
    judge: &'a str,
    rejudge_version: &'a str,
    generated_at: Option<&'a str>,
    summary: Summary<'a>,
    rows_included: usize,
    rows_omitted: u64,
    rows: Vec<&'a ReviewRow>,
}

#[derive(Serialize)]
struct Summary<'a> {
    rows: u64,
    outcomes: &'a BTreeMap<String, u64>,
}

fn review_row(index: u64, conversation: Option<&Conversation>, verdict: &Verdict) -> ReviewRow {
    let swapped = verdict.outcome == Outcome::Swapped;
    let text = |value: &str| clipped(value);
    let (chosen, rejected) = match conversation {
        Some(c) if swapped => (text(&c.rejected), text(&c.chosen)),
        Some(c) => (text(&c.chosen), text(&c.rejected)),
        None => (String::new(), String::new()),
    };
    let reason = verdict
        .preference
        .as_ref()
        .map(|(_, reason)| reason.clone());
    ReviewRow {
        index,
        outcome: verdict.outcome.as_str().to_owned(),
        prompt: conversation.map(|c| text(&c.prompt)).unwrap_or_default(),
        system: conversation.and_then(|c| c.system.as_deref().map(text)),
        history: conversation.map_or_else(Vec::new, |c| {
            c.history
                .iter()
                .map(|turn| Turn {
                    role: turn.role.clone(),
                    content: text(&turn.content),
                })
                .collect()
        }),
        chosen,
        rejected,
        chosen_score: verdict.chosen.as_ref().map(|r| r.score),
        rejected_score: verdict.rejected.as_ref().map(|r| r.score),
        chosen_rationale: verdict
            .chosen
            .as_ref()
            .map(|r| r.rationale.clone())
            .or(reason),
        rejected_rationale: verdict.rejected.as_ref().map(|r| r.rationale.clone()),
        failure_reason: verdict.reason.clone(),
        shown_first: verdict.shown_first.map(|s| s.as_str().to_owned()),
        margin: verdict.margin,
    }
}

fn clipped(text: &str) -> String {
    if text.len() <= LONGEST_TEXT {
        return text.to_owned();
    }
    let mut end = LONGEST_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &text[..end], text.len() - end)
}

/// The JSON of the page's data block. Characters that could end the script element or start
/// markup inside it are written as JSON escapes, and so are U+2028 and U+2029 (line ends to
/// older JavaScript parsers); it is still the same JSON document.
fn embedded(document: &Document<'_>) -> String {
    let text = serde_json::to_string(document).expect("the review serialises; this is a bug");
    let mut escaped = String::with_capacity(text.len() + text.len() / 16);
    for character in text.chars() {
        match character {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{DecisionPolicy, Opinion, Rating};

    fn conversation(chosen: &str, rejected: &str) -> Conversation {
        Conversation {
            system: None,
            history: Vec::new(),
            prompt: "Q </script><b>?".into(),
            chosen: chosen.into(),
            rejected: rejected.into(),
            chosen_is_first: true,
            category: None,
        }
    }

    fn rating(score: f64) -> Rating {
        Rating {
            score,
            rationale: "why".into(),
            distribution: None,
        }
    }

    #[test]
    fn swapped_rows_show_the_new_order_and_markup_stays_data() {
        let opinion = Opinion::Ratings {
            chosen: rating(1.0),
            rejected: rating(5.0),
        };
        let verdict = Verdict::decide(
            vec![(true, opinion)],
            &DecisionPolicy::default(),
            "j".into(),
        );
        let mut review = Review::default();
        review.push(4, Some(&conversation("worse", "better\u{2028}")), &verdict);
        let row = &review.flagged[0];
        assert_eq!(
            (row.chosen.as_str(), row.rejected.as_str()),
            ("better\u{2028}", "worse")
        );
        assert_eq!(row.chosen_score, Some(5.0));
        let outcomes = BTreeMap::from([("swapped".to_owned(), 1)]);
        let about = About {
            input: "in.jsonl",
            judge: "j",
            rows: 1,
            outcomes: &outcomes,
        };
        let folder = tempfile::tempdir().unwrap();
        review.write(folder.path(), &about).unwrap();
        let page = std::fs::read_to_string(folder.path().join("review.html")).unwrap();
        let start = page.find("type=\"application/json\">").unwrap();
        let data = &page[start..page[start..].find("</script>").unwrap() + start];
        assert!(
            !data[1..].contains('<') && !data.contains('\u{2028}'),
            "{data}"
        );
        assert!(data.contains("\\u003c/script\\u003e"));
    }

    #[test]
    fn a_full_page_counts_what_it_leaves_out() {
        let verdict = Verdict::invalid("rejected is null".into(), "j".into());
        let mut review = Review::default();
        for index in 0..(MOST_FLAGGED as u64 + 3) {
            review.push(index, None, &verdict);
        }
        assert_eq!((review.flagged.len(), review.omitted), (MOST_FLAGGED, 3));
    }
}
