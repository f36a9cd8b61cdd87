//! Integration tests of keyward-detectors.

/// Engine behaviour: tables of cases, validation, canaries, streaming, never panicking.
mod engine;
/// Rule files in gitleaks' format: translation, semantics, and what is reported.
mod gitleaks;
/// Every built-in rule's examples match and its negatives do not; the pack's size and coverage.
mod rules;
