//! The judge's answer is untrusted text: whatever it holds, parsing must not panic; a rating it
//! returns must carry two real scores on the 1-5 scale, and a preference a bounded reason.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rejudge::verdict::{AnswerFormat, Judgment, Rating, parse_judgment, parse_preference};

/// The longest reason a preference keeps, in characters (`REASON_CHARS` in src/verdict/parse.rs
/// is smaller; this bound only has to catch a reason that grows with the input).
const LONGEST_REASON: usize = 4_096;

fn check(rating: &Rating, text: &str, format: AnswerFormat) {
    assert!(
        rating.score.is_finite() && (1.0..=5.0).contains(&rating.score),
        "score {} out of range under {format:?} for {text:?}",
        rating.score
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [AnswerFormat::Schema, AnswerFormat::Text] {
        match parse_judgment(&text, format) {
            Ok(Judgment::Ratings {
                response_a,
                response_b,
            }) => {
                check(&response_a, &text, format);
                check(&response_b, &text, format);
            }
            Ok(Judgment::Preference(_)) => panic!("a rating parse gave a preference for {text:?}"),
            Err(_) => {}
        }
    }
    if let Ok(judgment) = parse_preference(&text) {
        let Judgment::Preference(preference) = judgment else {
            panic!("a preference parse gave ratings for {text:?}");
        };
        assert!(preference.probabilities.is_none(), "text alone has no probabilities");
        assert!(
            preference.reason.chars().count() <= LONGEST_REASON,
            "a reason of {} characters",
            preference.reason.chars().count()
        );
    }
});
