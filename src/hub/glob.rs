//! Glob patterns of a dataset card's `data_files`, matched against a repository's file paths
//! as `datasets` matches them: `*` and `?` within one path segment, `[...]` classes (`[!...]`
//! or `[^...]` negated, `a-z` ranges), and `**` as a whole segment for any number of segments.
//! A wildcard never matches a leading `.`, so hidden files and folders stay out unless a
//! pattern names them.

/// Whether `path` (segments joined by `/`) matches `pattern`.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern
        .trim_start_matches("./")
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let path: Vec<&str> = path.split('/').collect();
    segments_match(&pattern, &path)
}

fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| {
            path[..skip].iter().all(|segment| !segment.starts_with('.'))
                && segments_match(rest, &path[skip..])
        }),
        Some((first, rest)) => path.split_first().is_some_and(|(segment, tail)| {
            segment_matches(first, segment) && segments_match(rest, tail)
        }),
    }
}

fn segment_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    if text.first() == Some(&'.') && pattern.first() != Some(&'.') {
        return false;
    }
    chars_match(&pattern, &text)
}

/// Matching with one backtracking point, the last `*` seen: linear in practice, and never
/// exponential whatever the pattern.
fn chars_match(pattern: &[char], text: &[char]) -> bool {
    let (mut at, mut position) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while position < text.len() {
        let step = match pattern.get(at) {
            Some('*') => {
                star = Some((at, position));
                at += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class(&pattern[at..], text[position]) {
                Some((true, length)) => Some(length),
                Some((false, _)) => None,
                None => (text[position] == '[').then_some(1),
            },
            Some(&literal) => (literal == text[position]).then_some(1),
            None => None,
        };
        if let Some(length) = step {
            at += length;
            position += 1;
        } else if let Some((star_at, star_position)) = star {
            at = star_at + 1;
            position = star_position + 1;
            star = Some((star_at, star_position + 1));
        } else {
            return false;
        }
    }
    pattern[at..].iter().all(|c| *c == '*')
}

/// Whether `c` is in the class that `pattern` opens, and the class's length; `None` when the
/// class is never closed (the `[` is then a literal).
fn class(pattern: &[char], c: char) -> Option<(bool, usize)> {
    let mut at = 1;
    let negated = matches!(pattern.get(at), Some('!' | '^'));
    if negated {
        at += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let member = *pattern.get(at)?;
        if member == ']' && !first {
            return Some((found != negated, at + 1));
        }
        first = false;
        if pattern.get(at + 1) == Some(&'-') && pattern.get(at + 2).is_some_and(|end| *end != ']') {
            let end = pattern[at + 2];
            found |= (member..=end).contains(&c);
            at += 3;
        } else {
            found |= member == c;
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_within_a_segment_and_double_stars_cross_them() {
        assert!(matches("data/train-*", "data/train-00000-of-00002.parquet"));
        assert!(matches("data/train*", "data/train.jsonl"));
        assert!(!matches("data/train-*", "data/test-00000-of-00001.parquet"));
        assert!(!matches("data/*", "data/sub/file.jsonl"), "* stops at /");
        assert!(!matches("*.jsonl", "data/train.jsonl"));
        assert!(matches("**/*.jsonl", "data/train.jsonl"));
        assert!(
            matches("**/*.jsonl", "train.jsonl"),
            "** also matches no segment"
        );
        assert!(matches("data/**", "data/a/b/c.csv"));
        assert!(matches("./data/train.csv", "data/train.csv"));
        assert!(matches("data/train.csv", "data/train.csv"));
        assert!(!matches("data/train.csv", "data/train.csv.gz"));
    }

    #[test]
    fn question_marks_and_classes() {
        assert!(matches(
            "data/train-[0-9][0-9].parquet",
            "data/train-07.parquet"
        ));
        assert!(!matches(
            "data/train-[0-9][0-9].parquet",
            "data/train-7a.parquet"
        ));
        assert!(matches("part-?.csv", "part-1.csv"));
        assert!(!matches("part-?.csv", "part-12.csv"));
        assert!(matches("[!t]*.csv", "dev.csv"));
        assert!(!matches("[^t]*.csv", "test.csv"));
        assert!(
            matches("[]x].csv", "].csv"),
            "a ] first in a class is a member"
        );
        assert!(matches("a[b.csv", "a[b.csv"), "an unclosed [ is a literal");
    }

    #[test]
    fn wildcards_do_not_reach_hidden_files() {
        assert!(!matches("*", ".gitattributes"));
        assert!(!matches("**/*.parquet", ".cache/x.parquet"));
        assert!(matches(".hidden/*.parquet", ".hidden/x.parquet"));
    }

    #[test]
    fn many_stars_do_not_explode() {
        let pattern = format!("{}b", "*a".repeat(30));
        assert!(!matches(&pattern, &"a".repeat(200)));
    }
}
