//! [`Secret`]: the one wrapper for credential material.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroize;

/// A value that must never be logged, serialized or printed.
///
/// Invariants: the inner value is zeroized when dropped; `Debug` and `Display` print
/// `[redacted]`; there is no `Serialize` impl (the socket API writes exposed values through
/// [`Secret::expose`] at the one place that needs them). `Clone` is deliberately absent so a copy
/// is always a visible `expose().clone()` at the call site.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value, for the single call that needs the bytes.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl Secret<String> {
    /// Copies a string slice into a new secret.
    pub fn from_str_copy(value: &str) -> Self {
        Self(value.to_owned())
    }

    /// Reads a secret from a file, trimming trailing whitespace (files usually end in `\n`).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let mut raw = fs_err::read_to_string(path)?;
        let trimmed_len = raw.trim_end().len();
        raw.truncate(trimmed_len);
        Ok(Self(raw))
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret<String>,
        }
        let s = Secret::from_str_copy("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        let h = Holder { token: s };
        assert!(!format!("{h:?}").contains("hunter2"));
        assert_eq!(h.token.expose(), "hunter2-very-secret");
    }

    #[test]
    fn deserializes_without_serialize() {
        let s: Secret<String> = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
    }
}
