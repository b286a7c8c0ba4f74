//! The judge's answer is untrusted text: whatever it holds, parsing must not panic, and a
//! judgment it returns must carry two real scores on the 1-5 scale.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rejudge::verdict::{AnswerFormat, Rating, parse_judgment};

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
        if let Ok(judgment) = parse_judgment(&text, format) {
            check(&judgment.response_a, &text, format);
            check(&judgment.response_b, &text, format);
        }
    }
});
