//! Redaction: a short form of a secret that lets a person recognise it without using it.

/// A redacted form of `secret`: a short prefix and suffix around `…`.
///
/// Long secrets keep 6 leading and 2 trailing characters (`ghp_9x…Q2`), which is enough to tell
/// token kinds and instances apart; short ones keep less, and secrets under 8 bytes keep only
/// their first character. A PEM block keeps its `-----BEGIN … -----` line. Non-printable bytes
/// become `?`.
///
/// # Example
/// ```
/// assert_eq!(keyward_detectors::redact(b"ghp_9xAbCdEfGhIjKlMnOpQrStUvWxYz0123Q2"), "ghp_9x…Q2");
/// assert_eq!(keyward_detectors::redact(b"hunter2"), "h…");
/// ```
pub fn redact(secret: &[u8]) -> String {
    if secret.starts_with(b"-----BEGIN") {
        let end = memchr::memmem::find(&secret[5..], b"-----").map_or(secret.len(), |i| i + 10);
        return format!("{}…", printable(&secret[..end.min(secret.len())]));
    }
    let n = secret.len();
    let (pre, post) = match n {
        0..8 => (1, 0),
        8..16 => (3, 1),
        _ => (6, 2),
    };
    format!(
        "{}…{}",
        printable(&secret[..pre.min(n)]),
        printable(&secret[n - post..])
    )
}

fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn forms() {
        assert_eq!(redact(b""), "…");
        assert_eq!(redact(b"abcdefghij"), "abc…j");
        assert_eq!(
            redact(b"-----BEGIN RSA PRIVATE KEY-----\nMIIE"),
            "-----BEGIN RSA PRIVATE KEY-----…"
        );
        assert_eq!(
            redact(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"),
            "??????…??"
        );
    }
}
