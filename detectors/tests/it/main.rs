//! Integration tests of keyward-detectors.

/// Engine behaviour: tables of cases, validation, canaries, streaming, never panicking.
mod engine;
/// Every built-in rule's examples match and its negatives do not; the pack's size and coverage.
mod rules;
