//! Integration tests of keyward-detectors.

/// Every built-in rule's examples match and its negatives do not; the pack's size and coverage.
mod rules;
