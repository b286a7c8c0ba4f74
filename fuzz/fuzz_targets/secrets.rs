//! Whatever a server echoes, a known secret never survives scrubbing.
//!
//! What holds, from src/secrets.rs: the redactor replaces each of its secret spellings in turn
//! (longest first), then blanks `Bearer`/`Basic` values; every step writes its input back as
//! pieces of itself with the marker `[REDACTED]` between them. Once a spelling has been replaced,
//! its text is gone, and a later step can only bring it back as a string that runs into a marker.
//! So every spelling the redactor holds (a secret of at least 6 bytes, and its percent-encoded
//! form; the same for a URL's password and for its `user:password` Basic value) is absent from
//! the result, provided it cannot overlap the marker: it is not part of the marker, does not hold
//! it whole, does not start with the marker's end and does not end with its start. A secret such
//! as `REDACTED` or `x]abcdef` can rightly reappear, so those are not checked.
//!
//! Input layout, split at NUL bytes: the secret, the URL's user, its password, and the echoed
//! text (lossily UTF-8). In the text, bytes 1 to 5 stand for the secret, its percent-encoded
//! form, the password, its percent-encoded form, and an `Authorization: Basic` header with the
//! user and password. A user holding `://` is taken as a whole URL instead.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rejudge::secrets::{REDACTED, Redactor};

/// The shortest secret the redactor scrubs by value (`SHORTEST_SECRET` in src/secrets.rs).
const SHORTEST_SECRET: usize = 6;

fn overlaps_marker(spelling: &str) -> bool {
    REDACTED.contains(spelling)
        || spelling.contains(REDACTED)
        || (1..REDACTED.len()).any(|cut| {
            spelling.starts_with(&REDACTED[cut..]) || spelling.ends_with(&REDACTED[..cut])
        })
}

/// Percent-encoding as a URL spells a secret: unreserved bytes as they are, the rest `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Standard base64 with padding, as in an `Authorization: Basic` header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::new();
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        for sextet in 0..4 {
            if sextet <= chunk.len() {
                let index = (bits >> (18 - 6 * sextet)) & 0x3F;
                encoded.push(char::from(ALPHABET[index as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data
        .splitn(4, |byte| *byte == 0)
        .map(String::from_utf8_lossy);
    let mut field = || fields.next().unwrap_or_default().into_owned();
    let (secret, user, password, echoed) = (field(), field(), field(), field());

    let basic = base64(format!("{user}:{password}").as_bytes());
    // The password and Basic value the redactor is known to find in the URL, if any.
    let (url, credentials) = if user.contains("://") {
        (user, None)
    } else {
        let url = format!("http://{user}:{password}@host/v1");
        let found = (!user.contains([':', '/', '?', '#']) && !password.contains(['/', '?', '#']))
            .then(|| (password.clone(), basic.clone()));
        (url, found)
    };

    let mut text = String::new();
    for c in echoed.chars() {
        match c {
            '\u{1}' => text.push_str(&secret),
            '\u{2}' => text.push_str(&percent_encoded(&secret)),
            '\u{3}' => text.push_str(&password),
            '\u{4}' => text.push_str(&percent_encoded(&password)),
            '\u{5}' => {
                text.push_str("Authorization: Basic ");
                text.push_str(&basic);
            }
            other => text.push(other),
        }
    }

    let redactor = Redactor::new([secret.clone()]).with_url_credentials(&url);
    let scrubbed = redactor.scrub(&text);

    let mut spellings = Vec::new();
    if secret.len() >= SHORTEST_SECRET {
        spellings.push(percent_encoded(&secret));
        spellings.push(secret);
    }
    if let Some((password, basic)) = credentials {
        for known in [password, basic] {
            if known.len() >= SHORTEST_SECRET {
                spellings.push(percent_encoded(&known));
                spellings.push(known);
            }
        }
    }
    for spelling in spellings.iter().filter(|s| !overlaps_marker(s)) {
        assert!(
            !scrubbed.contains(spelling.as_str()),
            "{spelling:?} survives in {scrubbed:?} (from {text:?})"
        );
    }
    // No `Bearer`/`Basic` credential survives either: scrubbing again finds nothing to blank.
    assert_eq!(
        Redactor::default().scrub(&scrubbed),
        scrubbed,
        "a credential survives in {scrubbed:?} (from {text:?})"
    );
});
