//! Scores written as prose: "Response A: 4/5", "Score B: 2", "Risposta A: punteggio 3",
//! "**Response B:** 2 out of 5", "A: 4, B: 2".
//!
//! A score counts only when it comes right after its own label, so "Response A cites 3
//! sources" or "version 4" are not scores, and a label's window ends where the next label
//! starts, so nothing is read across labels. Everything here works on bytes: the patterns are
//! ASCII, and positions must match the text they came from.

/// Words that, followed by `A` or `B`, name a response.
const LABEL_WORDS: [&[u8]; 7] = [
    b"response",
    b"risposta",
    b"assistant",
    b"answer",
    b"candidate",
    b"score",
    b"punteggio",
];
/// Verbs and nouns that may stand between a label and its score.
const FILLERS: [&[u8]; 9] = [
    b"scores",
    b"score",
    b"gets",
    b"receives",
    b"rating",
    b"rated",
    b"punteggio",
    b"voto",
    b"ottiene",
];
/// Phrases after which a verdict replaces the ones before it.
const FINAL_MARKERS: [&[u8]; 8] = [
    b"final answer",
    b"final verdict",
    b"final scores",
    b"final score",
    b"verdetto finale",
    b"valutazione finale",
    b"risposta finale",
    b"giudizio finale",
];
/// How far after its label a score may start.
const WINDOW: usize = 48;

/// The labelled scores of a text, in order: `(position, 'a' or 'b', score)`.
#[derive(Debug, Default)]
pub(super) struct ProseScores {
    pub scores: Vec<(usize, char, f64)>,
    /// Set when a label is followed by something in score form that is not a 1-5 score
    /// ("8/10", "0/5", "-1").
    pub bad_score: bool,
    pub error: Option<String>,
}

/// One label: where it starts and ends, and which response it names.
struct Label {
    start: usize,
    end: usize,
    letter: char,
}

/// Every labelled score in `text`.
pub(super) fn labelled_scores(text: &str) -> ProseScores {
    let bytes = text.as_bytes();
    let labels = labels(bytes);
    let mut found = ProseScores::default();
    for (index, label) in labels.iter().enumerate() {
        let limit = labels.get(index + 1).map_or(bytes.len(), |next| next.start);
        let window = &bytes[label.end..limit.min(label.end + WINDOW)];
        match read_score(window) {
            Read::Score(score) => found.scores.push((label.start, label.letter, score)),
            Read::Bad(what) => {
                found.bad_score = true;
                found.error.get_or_insert(format!(
                    "Response {}: {what} is not a score from 1 to 5",
                    label.letter.to_ascii_uppercase()
                ));
            }
            Read::Nothing => {}
        }
    }
    found
}

/// Where the last "final answer"-like marker ends, if the text has one.
pub(super) fn last_final_marker(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    FINAL_MARKERS
        .iter()
        .filter_map(|marker| {
            let marker = std::str::from_utf8(marker).expect("markers are ASCII; this is a bug");
            lower.rfind(marker).map(|at| at + marker.len())
        })
        .max()
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Labels in order: a label word and a capital `A`/`B` ("Response A"), or a lone capital `A`/`B`
/// followed by a colon ("A: 4").
fn labels(bytes: &[u8]) -> Vec<Label> {
    let mut labels = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        if let Some(label) = label_at(bytes, position) {
            position = label.end;
            labels.push(label);
        } else {
            position += 1;
        }
    }
    labels
}

fn label_at(bytes: &[u8], start: usize) -> Option<Label> {
    if start > 0 && is_word(bytes[start - 1]) {
        return None;
    }
    let letter_at = |at: usize| -> Option<char> {
        let letter = *bytes.get(at)?;
        let whole = bytes.get(at + 1).is_none_or(|next| !is_word(*next));
        (matches!(letter, b'A' | b'B') && whole).then(|| char::from(letter.to_ascii_lowercase()))
    };
    for word in LABEL_WORDS {
        let Some(candidate) = bytes.get(start..start + word.len()) else {
            continue;
        };
        if !candidate.eq_ignore_ascii_case(word) {
            continue;
        }
        let spaces = count_while(&bytes[start + word.len()..], |b| b == b' ' || b == b'\t');
        let at = start + word.len() + spaces;
        if spaces > 0
            && let Some(letter) = letter_at(at)
        {
            return Some(Label {
                start,
                end: at + 1,
                letter,
            });
        }
    }
    // A lone letter is a label only with a colon after it, possibly through markdown bold.
    let letter = letter_at(start)?;
    let rest = &bytes[start + 1..];
    let bold = count_while(rest, |b| b == b'*');
    let gap = count_while(&rest[bold..], |b| b == b' ');
    (rest.get(bold + gap) == Some(&b':')).then_some(Label {
        start,
        end: start + 1,
        letter,
    })
}

fn count_while(bytes: &[u8], keep: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|b| keep(**b)).count()
}

enum Read {
    Score(f64),
    Bad(String),
    Nothing,
}

/// The score at the start of a label's window: separators, at most one filler word, a number,
/// and an optional "/5" or "out of 5".
fn read_score(window: &[u8]) -> Read {
    let separators = |b: u8| matches!(b, b' ' | b'\t' | b'*' | b':' | b'=' | b'(');
    let mut at = count_while(window, separators);
    if window[at..].starts_with(b"'s ") {
        at += 3;
    }
    if let Some(filler) = FILLERS
        .iter()
        .find(|filler| starts_with_word(&window[at..], filler))
    {
        at += filler.len();
        at += count_while(&window[at..], separators);
    }
    let rest = &window[at..];
    if rest.first() == Some(&b'-') && rest.get(1).is_some_and(u8::is_ascii_digit) {
        return Read::Bad(String::from_utf8_lossy(&rest[..2]).into_owned());
    }
    match number_then_scale(rest) {
        None | Some(Scale::Placeholder) => Read::Nothing,
        Some(Scale::Other(text)) => Read::Bad(text),
        Some(Scale::OutOfFive(score)) if (1.0..=5.0).contains(&score) => Read::Score(score),
        Some(Scale::OutOfFive(score)) => Read::Bad(score.to_string()),
    }
}

fn starts_with_word(bytes: &[u8], word: &[u8]) -> bool {
    bytes.len() >= word.len()
        && bytes[..word.len()].eq_ignore_ascii_case(word)
        && bytes.get(word.len()).is_none_or(|next| !is_word(*next))
}

enum Scale {
    /// A number on the 1-5 scale (or with no scale written).
    OutOfFive(f64),
    /// A range such as "1-5": the template's placeholder, not a score.
    Placeholder,
    /// A number on another scale ("8/10").
    Other(String),
}

/// A number at the start of `bytes` and what follows it.
fn number_then_scale(bytes: &[u8]) -> Option<Scale> {
    let (value, length) = number(bytes)?;
    let rest = &bytes[length..];
    if rest.first() == Some(&b'-') && rest.get(1).is_some_and(u8::is_ascii_digit) {
        return Some(Scale::Placeholder);
    }
    if rest.first().is_some_and(u8::is_ascii_alphabetic) {
        // "4th", "3x": not a score.
        return None;
    }
    let spaces = count_while(rest, |b| b == b' ');
    let after = &rest[spaces..];
    let out_of = after
        .strip_prefix(b"/")
        .or_else(|| strip_prefix_ignoring_case(after, b"out of "))
        .or_else(|| strip_prefix_ignoring_case(after, b"su "))
        .map(|scale| &scale[count_while(scale, |b| b == b' ')..]);
    let Some(scale) = out_of else {
        return Some(Scale::OutOfFive(value));
    };
    match number(scale) {
        Some((five, _)) if (five - 5.0).abs() < f64::EPSILON => Some(Scale::OutOfFive(value)),
        Some((other, _)) => Some(Scale::Other(format!("{value}/{other}"))),
        None => Some(Scale::OutOfFive(value)),
    }
}

/// A decimal number (`4`, `3.5`) at the start of `bytes`, and its length.
fn number(bytes: &[u8]) -> Option<(f64, usize)> {
    let whole = count_while(bytes, |b| b.is_ascii_digit());
    if whole == 0 || whole > 3 {
        return None;
    }
    let mut length = whole;
    if bytes.get(length) == Some(&b'.') && bytes.get(length + 1).is_some_and(u8::is_ascii_digit) {
        length += 1 + count_while(&bytes[length + 1..], |b| b.is_ascii_digit()).min(3);
    }
    let text = std::str::from_utf8(&bytes[..length]).ok()?;
    Some((text.parse().ok()?, length))
}

/// A score written as a JSON string: "4", " 4 ", "4/5", "4 out of 5", "4.5"; nothing else.
pub(super) fn score_text(text: &str) -> Option<f64> {
    let bytes = text.trim().as_bytes();
    let (score, length) = number(bytes)?;
    let rest = bytes[length..].trim_ascii();
    if rest.is_empty() {
        return Some(score);
    }
    let scale = rest
        .strip_prefix(b"/")
        .or_else(|| strip_prefix_ignoring_case(rest, b"out of "))
        .or_else(|| strip_prefix_ignoring_case(rest, b"su "))?;
    (scale.trim_ascii() == b"5").then_some(score)
}

fn strip_prefix_ignoring_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &bytes[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(char, f64)> {
        labelled_scores(text)
            .scores
            .into_iter()
            .map(|(_, l, s)| (l, s))
            .collect()
    }

    #[test]
    fn scores_follow_their_own_labels() {
        assert_eq!(
            read("Response A: 4/5. Response B: 2 out of 5."),
            [('a', 4.0), ('b', 2.0)]
        );
        assert_eq!(
            read("Response A is better than Response B. Response A: 5/5."),
            [('a', 5.0)]
        );
        assert_eq!(read("Response A cites 3 sources"), []);
        assert_eq!(
            read("criteria: 1, data: 2, A: 3, **B**: 4"),
            [('a', 3.0), ('b', 4.0)]
        );
        assert_eq!(
            read("Risposta A: punteggio 4, Risposta B ottiene 2"),
            [('a', 4.0), ('b', 2.0)]
        );
        assert_eq!(read("the response about it: 3"), []);
        assert_eq!(read("Response A: <1-5>, Response B: 1-5"), []);
    }

    #[test]
    fn other_scales_are_bad_scores() {
        for text in [
            "Response A: 8/10",
            "Response A: 0/5",
            "Response A: -1",
            "Response A: 7",
        ] {
            assert!(labelled_scores(text).bad_score, "{text}");
        }
    }

    #[test]
    fn score_strings() {
        assert_eq!(score_text("4"), Some(4.0));
        assert_eq!(score_text(" 4/5 "), Some(4.0));
        assert_eq!(score_text("4 out of 5"), Some(4.0));
        assert_eq!(score_text("4.5"), Some(4.5));
        for bad in ["1-5", "X", "8/10", "four", "<1-5>", "", "4 stars"] {
            assert_eq!(score_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn final_markers() {
        assert_eq!(last_final_marker("Draft. Final answer: x"), Some(19));
        assert_eq!(last_final_marker("Verdetto finale: x"), Some(15));
        assert_eq!(last_final_marker("no marker"), None);
    }
}
