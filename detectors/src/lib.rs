//! keyward's detection engine: bytes in, matches out.
//!
//! - [`RuleSet`]: rules as data (TOML), compiled once; the built-in pack ships inside the crate.
//! - [`Scanner`]: the two-stage matcher — one pass over the input for every rule's keywords,
//!   then each rule's regex only in bounded windows around its hits — plus exact-match
//!   [`Canaries`] and base64 decoding.
//! - [`Match`]: rule, span, line and column, entropy, [`Validation`], [`Fingerprint`], and the
//!   secret as a [`Secret`] (zeroized, never printed).
//! - [`StreamScanner`]: the same over a stream, in constant memory.
//!
//! There is no I/O, no async and no global mutable state here.
//!
//! # Example
//! ```
//! use keyward_detectors::{RuleSet, Scanner};
//! use std::sync::Arc;
//!
//! let rules = RuleSet::builder()
//!     .builtin(false)
//!     .add_source("demo.toml", r#"
//!         [[rule]]
//!         id = "demo-token"
//!         name = "Demo token"
//!         severity = "high"
//!         keywords = ["dmo_"]
//!         regex = '\b(?P<secret>dmo_[a-zA-Z0-9]{20})\b'
//!     "#)
//!     .build()
//!     .unwrap();
//! let scanner = Scanner::new(Arc::new(rules));
//! let found = scanner.scan(b"line one\ntoken = dmo_q8Zr2LmX0vT4kP9wAb3C\n");
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].rule.as_str(), "demo-token");
//! assert_eq!((found[0].line, found[0].column), (2, 9));
//! assert_eq!(found[0].redacted(), "dmo_q8…3C");
//! ```
#![deny(missing_docs)]

mod canary;
mod confidence;
mod encoded;
mod engine;
mod entropy;
mod error;
mod fingerprint;
mod gitleaks;
mod keywords;
mod mask;
mod matches;
mod placeholder;
mod redact;
mod rule;
mod ruleset;
mod secret;
mod stream;
mod validate;

pub use canary::{CANARY_RULE_ID, Canaries, MIN_CANARY_LEN, Snapshot};
pub use confidence::{Assessment, Confidence, Reasons, in_test_code, path_reasons, value_reasons};
pub use engine::{Scanner, ScannerBuilder};
pub use entropy::shannon_entropy;
pub use error::{Error, ErrorKind};
pub use fingerprint::Fingerprint;
pub use mask::{MASK, MIN_MASK_LEN, MaskStream, Masker};
pub use matches::{Encoding, Match};
pub use placeholder::is_placeholder;
pub use redact::redact;
pub use rule::{DEFAULT_WINDOW, MAX_WINDOW, Rule, RuleId, Severity};
pub use ruleset::{RuleSet, RuleSetBuilder};
pub use secret::Secret;
pub use stream::{DEFAULT_CHUNK, StreamScanner};
pub use validate::{Validation, token_checksum};
