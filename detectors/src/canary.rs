//! Exact-match literals: credentials the broker issued, or values known to have leaked.

use crate::{Fingerprint, Secret};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// Rule id of canary matches.
pub const CANARY_RULE_ID: &str = "keyward-canary";

/// Shortest literal accepted: shorter ones would match by accident.
pub const MIN_CANARY_LEN: usize = 8;

/// A set of exact literals, searched by a second automaton.
///
/// Literals can be added and removed while scans run on other threads: each scan takes a
/// snapshot ([`Canaries::snapshot`]) and a change builds a new automaton and swaps it in.
///
/// NOTE: values are kept in zeroizing buffers, but the automaton necessarily holds the literal
/// bytes in its own (non-zeroizing) transition tables until it is dropped. Nothing here ever
/// writes a value to a log, a file or `Debug` output.
#[derive(Default)]
pub struct Canaries {
    state: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for Canaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Canaries({} literals)", self.len())
    }
}

/// An immutable view of the canary set, used for one scan.
#[derive(Default)]
pub struct Snapshot {
    entries: Vec<Entry>,
    automaton: Option<AhoCorasick>,
}

struct Entry {
    fingerprint: Fingerprint,
    label: Arc<str>,
    value: Zeroizing<Vec<u8>>,
}

impl Canaries {
    /// An empty set.
    pub fn new() -> Canaries {
        Canaries::default()
    }

    /// Adds a literal with a label (e.g. the lease id that issued it). Returns its fingerprint,
    /// by which it can be removed. Adding a value twice keeps one entry with the newer label.
    ///
    /// # Errors
    /// A value shorter than [`MIN_CANARY_LEN`] bytes is refused (it would match by accident);
    /// the error message never contains the value.
    pub fn add(&self, label: &str, value: &Secret<Vec<u8>>) -> Result<Fingerprint, String> {
        if value.expose().len() < MIN_CANARY_LEN {
            return Err(format!(
                "canary {label:?} is shorter than {MIN_CANARY_LEN} bytes"
            ));
        }
        let fingerprint = Fingerprint::of(CANARY_RULE_ID, value.expose());
        self.update(|entries| {
            entries.retain(|e| e.fingerprint != fingerprint);
            entries.push(Entry {
                fingerprint: fingerprint.clone(),
                label: Arc::from(label),
                value: Zeroizing::new(value.expose().clone()),
            });
        });
        Ok(fingerprint)
    }

    /// Removes a literal by fingerprint. Returns whether it was present.
    pub fn remove(&self, fingerprint: &Fingerprint) -> bool {
        let mut removed = false;
        self.update(|entries| {
            let before = entries.len();
            entries.retain(|e| &e.fingerprint != fingerprint);
            removed = entries.len() != before;
        });
        removed
    }

    /// Number of literals.
    pub fn len(&self) -> usize {
        self.snapshot().entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current set, for one scan.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut Vec<Entry>)) {
        let mut guard = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut entries: Vec<Entry> = guard
            .entries
            .iter()
            .map(|e| Entry {
                fingerprint: e.fingerprint.clone(),
                label: e.label.clone(),
                value: e.value.clone(),
            })
            .collect();
        change(&mut entries);
        let automaton = (!entries.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(entries.iter().map(|e| e.value.as_slice()))
                .expect("literal automaton over a few thousand values always builds")
        });
        *guard = Arc::new(Snapshot { entries, automaton });
    }
}

impl Snapshot {
    /// Calls `f(span, entry fingerprint, label, value)` for each literal occurrence.
    pub(crate) fn find(
        &self,
        input: &[u8],
        mut f: impl FnMut(std::ops::Range<usize>, &Fingerprint, &Arc<str>, &[u8]),
    ) {
        let Some(ac) = &self.automaton else { return };
        for m in ac.find_iter(input) {
            let e = &self.entries[m.pattern().as_usize()];
            f(m.range(), &e.fingerprint, &e.label, &e.value);
        }
    }
}
