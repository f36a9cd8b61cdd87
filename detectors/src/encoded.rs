//! Base64 runs: found, decoded once, and handed back to the engine to scan.
//!
//! Kubernetes `Secret` data, Docker `auth` fields and kubeconfig `*-data` keys hold credentials
//! base64-encoded, where no keyword is visible. The engine finds runs of base64 characters of at
//! least [`MIN_RUN`] bytes, decodes each once (standard or URL-safe alphabet), and scans the
//! decoded bytes if they look like text.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use std::ops::Range;

/// Shortest run worth decoding: `user:password` encodes to 20 characters.
pub(crate) const MIN_RUN: usize = 20;
/// Longest run decoded: larger runs are embedded binaries (images, fonts), not credentials.
const MAX_RUN: usize = 64 * 1024;

/// Byte classes: 0 = not base64, 1 = lower, 2 = upper, 4 = digit, 8 = `+` or `/`, 16 = `-` or
/// `_`, 32 = `=`.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'a'..=b'z' => 1,
            b'A'..=b'Z' => 2,
            b'0'..=b'9' => 4,
            b'+' | b'/' => 8,
            b'-' | b'_' => 16,
            b'=' => 32,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Lower, upper and digit classes together.
const TEXT_MIX: u8 = 0b111;
/// The standard (`+/`) and URL-safe (`-_`) specials together.
const BOTH_ALPHABETS: u8 = 0b1_1000;

/// A decoded run.
pub(crate) struct Decoded {
    /// Where the encoded run sits in the input.
    pub(crate) span: Range<usize>,
    pub(crate) bytes: Vec<u8>,
}

/// Whether `b` is a base64 body character (either alphabet; not `=`).
#[inline]
fn is_body(b: u8) -> bool {
    CLASS[b as usize] & 31 != 0
}

/// Calls `f` for each base64 run in `input` that decodes to text.
///
/// Runs shorter than [`MIN_RUN`] are skipped without looking at most of their bytes: any run of
/// `MIN_RUN` or more that starts at or after `i` covers `i + MIN_RUN - 1`, so if that byte is
/// not base64 the search jumps past it (the skip loop of Boyer-Moore-style searches). Source
/// code is mostly short words, so this reads a fraction of the input.
pub(crate) fn for_each_decoded(input: &[u8], mut f: impl FnMut(Decoded)) {
    let n = input.len();
    // Invariant: `i == 0`, or `input[i - 1]` is not a body character, so no run starts before
    // `i` and continues past it.
    let mut i = 0;
    while i + MIN_RUN <= n {
        let probe = i + MIN_RUN - 1;
        if !is_body(input[probe]) {
            i = probe + 1;
            continue;
        }
        let mut start = probe;
        while start > i && is_body(input[start - 1]) {
            start -= 1;
        }
        let mut body_end = probe + 1;
        while body_end < n && is_body(input[body_end]) {
            body_end += 1;
        }
        let mut end = body_end;
        while end < n && input[end] == b'=' {
            end += 1;
        }
        i = end;
        let len = body_end - start;
        if !(MIN_RUN..=MAX_RUN).contains(&len) {
            continue;
        }
        let seen = input[start..body_end]
            .iter()
            .fold(0u8, |acc, &b| acc | CLASS[b as usize]);
        // Real base64 of 15+ bytes of text has lower, upper and digits; identifiers and words
        // (`some_long_function_name`) rarely do. Mixed alphabets are not one encoding.
        if seen & TEXT_MIX != TEXT_MIX || seen & BOTH_ALPHABETS == BOTH_ALPHABETS {
            continue;
        }
        let body = &input[start..body_end];
        let engine = if seen & 0b1_0000 != 0 {
            &URL_SAFE_NO_PAD
        } else {
            &STANDARD_NO_PAD
        };
        // A length of 1 mod 4 is never valid; drop the last char rather than give up (the run
        // may have swallowed a neighbouring letter).
        let body = if body.len() % 4 == 1 {
            &body[..body.len() - 1]
        } else {
            body
        };
        if let Ok(bytes) = engine.decode(body)
            && looks_like_text(&bytes)
        {
            f(Decoded {
                span: start..end,
                bytes,
            });
        }
    }
}

/// At least 90% printable ASCII or whitespace, or valid UTF-8 without control bytes.
fn looks_like_text(bytes: &[u8]) -> bool {
    let printable = bytes
        .iter()
        .filter(|&&b| (0x20..0x7f).contains(&b) || matches!(b, b'\n' | b'\r' | b'\t'))
        .count();
    if printable * 10 >= bytes.len() * 9 {
        return true;
    }
    std::str::from_utf8(bytes)
        .is_ok_and(|s| !s.chars().any(|c| c.is_control() && !c.is_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn decoded(input: &[u8]) -> Vec<(Range<usize>, Vec<u8>)> {
        let mut v = Vec::new();
        for_each_decoded(input, |d| v.push((d.span, d.bytes)));
        v
    }

    #[test]
    fn finds_standard_and_url_safe_runs() {
        let enc = STANDARD.encode(b"user:correct-horse-battery");
        let input = format!("auth: \"{enc}\"\n");
        let got = decoded(input.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"user:correct-horse-battery");
        assert_eq!(&input[got[0].0.clone()], enc);

        let text = b"token=??>>?abcdefgh??>>ZZ0123";
        let url = URL_SAFE_NO_PAD.encode(text);
        assert!(url.contains('_') || url.contains('-'), "{url}");
        assert_eq!(decoded(url.as_bytes())[0].1, text);

        let binary = STANDARD.encode((0u8..40).collect::<Vec<_>>());
        assert!(
            decoded(binary.as_bytes()).is_empty(),
            "binary content is not scanned"
        );
    }

    #[test]
    fn skips_identifiers_and_short_runs() {
        assert!(decoded(b"let some_long_function_name_here = other_long_identifier_x;").is_empty());
        assert!(decoded(b"dXNlcjpwYXNz").is_empty());
    }
}
