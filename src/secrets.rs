//! Keeping secrets out of everything rejudge stores or shows.
//!
//! A hostile or careless server can echo the request's `Authorization` header back in an error
//! body or even in a completion; that text then flows into failure reasons, the journal, the
//! report and the terminal. The backend therefore scrubs every text it hands on with a
//! [`Redactor`] that knows the secrets in use, and also blanks any `Bearer`/`Basic` credential
//! it sees, known or not.

use std::borrow::Cow;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Secrets shorter than this are not scrubbed by value: replacing every "ab" in a text would
/// destroy it, and no real key is that short.
const SHORTEST_SECRET: usize = 6;
/// Credential values shorter than this after `Bearer`/`Basic` are left alone ("Bearer of bad
/// news").
const SHORTEST_CREDENTIAL: usize = 8;

/// Scrubs known secrets and any authorization credentials from text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for these secrets; their Basic-auth and URL-encoded spellings are covered too.
    pub fn new<I: IntoIterator<Item = String>>(secrets: I) -> Self {
        let mut all: Vec<String> = Vec::new();
        for secret in secrets {
            if secret.len() < SHORTEST_SECRET {
                continue;
            }
            all.push(percent_encoded(&secret));
            all.push(secret);
        }
        all.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        all.dedup();
        Redactor { secrets: all }
    }

    /// A redactor that also knows the user name and password of `url`, if it has them.
    pub fn with_url_credentials(mut self, url: &str) -> Self {
        if let Some((user, password)) = credentials(url) {
            let basic = base64(format!("{user}:{password}").as_bytes());
            let more = Redactor::new([password, basic]);
            self.secrets.extend(more.secrets);
            self.secrets
                .sort_by_key(|secret| std::cmp::Reverse(secret.len()));
            self.secrets.dedup();
        }
        self
    }

    /// The text with every known secret and every `Bearer`/`Basic` credential replaced.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), REDACTED));
            }
        }
        match blank_credentials(&text) {
            Some(blanked) => Cow::Owned(blanked),
            None => text,
        }
    }
}

/// `user` and `password` of `scheme://user:password@host/...`.
fn credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    Some((user.to_owned(), password.to_owned()))
}

/// Replaces the value after every `Bearer ` or `Basic ` (any case); `None` when there is none.
fn blank_credentials(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for scheme in ["bearer", "basic"] {
        for (start, _) in lower.match_indices(scheme) {
            let after = start + scheme.len();
            let spaces = text[after..].len() - text[after..].trim_start_matches([' ', '\t']).len();
            if spaces == 0 {
                continue;
            }
            let value_start = after + spaces;
            let value_length = text[value_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/=".contains(c)))
                .unwrap_or(text.len() - value_start);
            if value_length >= SHORTEST_CREDENTIAL {
                cuts.push((value_start, value_start + value_length));
            }
        }
    }
    if cuts.is_empty() {
        return None;
    }
    cuts.sort_unstable();
    let mut blanked = String::with_capacity(text.len());
    let mut position = 0;
    for (start, end) in cuts {
        if start < position {
            continue;
        }
        blanked.push_str(&text[position..start]);
        blanked.push_str(REDACTED);
        position = end;
    }
    blanked.push_str(&text[position..]);
    Some(blanked)
}

fn percent_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Standard base64 with padding, for the `Basic` header value a server might echo, and for the
/// file contents of a Hub commit.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |group, (i, b)| group | u32::from(*b) << (16 - 8 * i));
        for position in 0..4 {
            if position <= chunk.len() {
                let index = (group >> (18 - 6 * position)) & 0x3F;
                encoded.push(char::from(ALPHABET[index as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

/// Whether `url` points at a Hugging Face host, the only place `HF_TOKEN` is sent unasked.
pub fn is_hugging_face(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    ["huggingface.co", "hf.co", "hf.space", "huggingface.cloud"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_credentials_are_scrubbed() {
        let redactor = Redactor::new(["sk-test-123456".to_owned()])
            .with_url_credentials("http://ann:hunter22@host/v1");
        let echoed = r#"{"error": "bad key sk-test-123456", "headers": {"authorization": "Bearer sk-test-123456"}}"#;
        let scrubbed = redactor.scrub(echoed);
        assert!(!scrubbed.contains("sk-test-123456"), "{scrubbed}");
        assert!(scrubbed.contains(REDACTED));
        let basic = format!("Authorization: Basic {}", base64(b"ann:hunter22"));
        assert!(
            !redactor.scrub(&basic).contains("YW5u"),
            "{}",
            redactor.scrub(&basic)
        );
        assert!(
            !redactor
                .scrub("password hunter22 leaked")
                .contains("hunter22")
        );
        let unknown = "Authorization: bearer hf_abcdefghijklmnop, fine";
        assert_eq!(
            Redactor::default().scrub(unknown),
            "Authorization: bearer [REDACTED], fine"
        );
        assert_eq!(
            Redactor::default().scrub("a Bearer of news"),
            "a Bearer of news"
        );
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"ann:hunter22"), "YW5uOmh1bnRlcjIy");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn hugging_face_hosts() {
        for url in [
            "https://router.huggingface.co/v1",
            "https://huggingface.co",
            "https://x.us-east-1.aws.endpoints.huggingface.cloud/v1",
            "https://me-space.hf.space/v1",
        ] {
            assert!(is_hugging_face(url), "{url}");
        }
        for url in [
            "http://localhost:8000/v1",
            "https://huggingface.co.evil.example/v1",
            "https://evilhuggingface.co/v1",
            "https://api.openai.com/v1",
        ] {
            assert!(!is_hugging_face(url), "{url}");
        }
    }
}
