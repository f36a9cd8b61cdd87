//! The shared placeholder filter: values that look like credentials but are documentation,
//! templates or dummies.
//!
//! Applied to every rule's secret unless the rule sets `skip-placeholder-filter`. Each check is
//! cheap and runs only on regex matches, never on the whole input.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::LazyLock;

/// Words that mark a value as an example or a template, matched case-insensitively anywhere in
/// a secret shorter than [`WORD_CHECK_MAX_LEN`]. Documented example keys (AWS's
/// `AKIAIOSFODNN7EXAMPLE`, Stripe's `sk_test_…` docs) contain one of them.
const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourtoken",
    "yourkey",
    "yourpass",
    "redacted",
    "dummy",
    "sample",
    "replace_me",
    "replaceme",
    "insert_",
    "xxxx",
    "****",
    "....",
    "____",
    "<",
    ">",
    "${",
    "{{",
    "}}",
    "%(",
    "$(",
];

/// Longer secrets (PEM blocks, long base64) contain short words by chance.
const WORD_CHECK_MAX_LEN: usize = 200;

static WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(PLACEHOLDER_WORDS)
        .expect("placeholder words compile")
});

/// Whether `secret` is a placeholder, a template reference or too regular to be a credential.
///
/// # Example
/// ```
/// use keyward_detectors::is_placeholder;
/// assert!(is_placeholder(b"AKIAIOSFODNN7EXAMPLE"));
/// assert!(is_placeholder(b"${GITHUB_TOKEN}"));
/// assert!(is_placeholder(b"aaaaaaaaaaaaaaaa"));
/// assert!(!is_placeholder(b"q8Zr2LmX0vT4kP9w"));
/// ```
pub fn is_placeholder(secret: &[u8]) -> bool {
    if secret.len() < WORD_CHECK_MAX_LEN && WORDS.is_match(secret) {
        return true;
    }
    // `$VAR`, `%VAR%`, `@VAR@`: a reference to the value, not the value.
    if let [b'$' | b'%' | b'@', rest @ ..] = secret
        && rest
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'%' | b'@' | b'{' | b'}'))
    {
        return true;
    }
    too_regular(secret)
}

/// Fewer than 4 distinct bytes in 8 or more, or a run of consecutive ascending or descending
/// characters (`0123456789`, `abcdef…`) making up most of it.
fn too_regular(secret: &[u8]) -> bool {
    if secret.len() < 8 {
        return false;
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &b in secret {
        if !seen[b as usize] {
            seen[b as usize] = true;
            distinct += 1;
        }
    }
    if distinct < 4 {
        return true;
    }
    let steps = secret
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) == 1 || w[0].wrapping_sub(w[1]) == 1 || w[0] == w[1])
        .count();
    steps * 10 >= (secret.len() - 1) * 8
}

#[cfg(test)]
mod tests {
    use super::is_placeholder;

    #[test]
    fn table() {
        for (input, expect) in [
            (&b"<your-token-here>"[..], true),
            (b"{{ .Values.token }}", true),
            (b"$API_KEY", true),
            (b"%API_KEY%", true),
            (b"changeme", true),
            (b"xxxxxxxxxxxxxxxxxxxxxxxx", true),
            (b"0123456789abcdef", true),
            (b"abcdefghijklmnop", true),
            (b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true),
            (b"hunter2", false),
            (b"N0tA-Pl4ceh0lder-9f2c", false),
            (b"ghp_R7kQx2mVn9PbT4wLc8ZsYd3HfJ6gAe1a2b3c", false),
        ] {
            assert_eq!(
                is_placeholder(input),
                expect,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
