//! [`KeywordIndex`]: stage one of the engine — every keyword of every rule, found in one pass.
//!
//! # Why not an Aho-Corasick DFA
//!
//! The first version ran one `aho-corasick` DFA (overlapping, ASCII-case-insensitive) over all
//! ~340 keywords. Profiling (`perf record` on `examples/throughput.rs`) put 75% of scan time in
//! that search, at ~280 MB/s per core: the DFA's hot rows (root and depth 1–2 states × ~50 byte
//! classes × 4 bytes) do not fit in L1, so nearly every byte costs an L2 access.
//!
//! This index instead hashes the 4 bytes at each position (ASCII letters folded to lower case)
//! into a 64 Ki-bit bitset — 8 KiB, always in L1 — built from the first 4 bytes of every
//! keyword. Only positions whose bit is set (well under 1% on source code) are verified, by an
//! exact, case-insensitive comparison against the keywords sharing that 4-byte prefix.
//! A keyword of exactly 3 bytes is a token prefix (`hf_`, `eyJ`, `SG.`); it is entered once for
//! each token byte that may follow it, so one hash per position serves every keyword. The
//! result is the set of (keyword, position) hits the overlapping Aho-Corasick search gives
//! (a property test checks this against `aho-corasick`).

/// A keyword hit: keyword index and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) keyword: u32,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

const BITS: usize = 1 << 16;

/// Bytes that may follow a 3-byte keyword: the characters tokens are made of. A 3-byte keyword
/// (`hf_`, `eyJ`, `SG.`) is a token prefix, so the byte after it is always one of these.
const TOKEN_BYTES: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~+/=";

/// Every keyword, findable in one pass. Invariant: keywords are at least 3 bytes long;
/// `by_prefix` holds every folded 4-byte prefix that can start a hit, grouped by slot.
#[derive(Clone)]
pub(crate) struct KeywordIndex {
    keywords: Vec<Vec<u8>>,
    bits: Box<[u64; BITS / 64]>,
    /// The same prefixes under a second, independent hash: a position must pass both filters
    /// before it is verified, which cuts false candidates about fifty-fold for one more L1 load
    /// on the ~2% of positions that pass the first.
    bits2: Box<[u64; BITS / 64]>,
    /// (folded 4-byte prefix, keyword), sorted by first-hash slot. A 3-byte keyword appears
    /// once per [`TOKEN_BYTES`] byte that may follow it.
    by_prefix: Vec<(u32, u32)>,
    /// `by_prefix[slot_start[s]..slot_start[s + 1]]` are the entries whose prefix hashes to `s`.
    slot_start: Vec<u32>,
}

/// Folds ASCII upper case to lower case in all four bytes at once. Other bytes may change too
/// (`_` becomes DEL, control bytes become punctuation), consistently for keywords and input;
/// the exact comparison afterwards removes any false candidate this causes.
#[inline]
fn fold(v: u32) -> u32 {
    v | 0x2020_2020
}

#[inline]
fn slot(v: u32) -> usize {
    (v.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

#[inline]
fn slot2(v: u32) -> usize {
    (v.wrapping_mul(0x85EB_CA6B) >> 16) as usize
}

#[inline]
fn has(bits: &[u64; BITS / 64], s: usize) -> bool {
    bits[s >> 6] & (1 << (s & 63)) != 0
}

impl KeywordIndex {
    /// Builds the index. `keywords` must be at least 3 bytes each (rules are refused otherwise).
    pub(crate) fn new(keywords: &[Vec<u8>]) -> KeywordIndex {
        let mut idx = KeywordIndex {
            keywords: keywords.iter().map(|k| k.to_ascii_lowercase()).collect(),
            bits: Box::new([0; BITS / 64]),
            bits2: Box::new([0; BITS / 64]),
            by_prefix: Vec::new(),
            slot_start: Vec::new(),
        };
        for (i, k) in idx.keywords.iter().enumerate() {
            assert!(
                k.len() >= 3,
                "keywords are at least 3 bytes (checked at rule load)"
            );
            let fourths: Vec<u8> = if k.len() >= 4 {
                vec![k[3]]
            } else {
                TOKEN_BYTES.to_vec()
            };
            for b in fourths {
                let p = fold(u32::from_le_bytes([k[0], k[1], k[2], b]));
                let (s, s2) = (slot(p), slot2(p));
                idx.bits[s >> 6] |= 1 << (s & 63);
                idx.bits2[s2 >> 6] |= 1 << (s2 & 63);
                idx.by_prefix.push((p, i as u32));
            }
        }
        idx.by_prefix
            .sort_unstable_by_key(|&(p, k)| (slot(p), p, k));
        idx.by_prefix.dedup();
        idx.slot_start = vec![0; BITS + 1];
        for &(p, _) in &idx.by_prefix {
            idx.slot_start[slot(p) + 1] += 1;
        }
        for s in 0..BITS {
            idx.slot_start[s + 1] += idx.slot_start[s];
        }
        idx
    }

    /// Calls `f` for every occurrence of every keyword (ASCII-case-insensitive), overlapping
    /// ones included, in order of start position. A 3-byte keyword counts only when a token
    /// byte ([`TOKEN_BYTES`]) follows it.
    #[inline]
    pub(crate) fn for_each_hit(&self, input: &[u8], mut f: impl FnMut(Hit)) {
        for (i, w) in input.windows(4).enumerate() {
            let v = fold(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            if has(&self.bits, slot(v)) && has(&self.bits2, slot2(v)) {
                self.verify(v, input, i, &mut f);
            }
        }
    }

    #[cold]
    fn verify(&self, prefix: u32, input: &[u8], at: usize, f: &mut impl FnMut(Hit)) {
        let s = slot(prefix);
        let range = self.slot_start[s] as usize..self.slot_start[s + 1] as usize;
        for &(p, k) in &self.by_prefix[range] {
            if p != prefix {
                continue;
            }
            let kw = &self.keywords[k as usize];
            let end = at + kw.len();
            // A 3-byte keyword's fourth byte passed only the folded comparison; check it exactly.
            let follows_ok =
                kw.len() > 3 || input.get(end).is_some_and(|b| TOKEN_BYTES.contains(b));
            if end <= input.len() && follows_ok && input[at..end].eq_ignore_ascii_case(kw) {
                f(Hit {
                    keyword: k,
                    start: at,
                    end,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasick, MatchKind};

    type Hits = Vec<(u32, usize, usize)>;

    fn both(keywords: &[&str], input: &[u8]) -> (Hits, Hits) {
        let kws: Vec<Vec<u8>> = keywords.iter().map(|k| k.as_bytes().to_vec()).collect();
        let idx = KeywordIndex::new(&kws);
        let mut mine = Vec::new();
        idx.for_each_hit(input, |h| mine.push((h.keyword, h.start, h.end)));
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&kws)
            .unwrap();
        // The documented difference: a 3-byte keyword needs a token byte after it.
        let mut reference: Vec<_> = ac
            .find_overlapping_iter(input)
            .filter(|m| m.len() > 3 || input.get(m.end()).is_some_and(|b| TOKEN_BYTES.contains(b)))
            .map(|m| (m.pattern().as_usize() as u32, m.start(), m.end()))
            .collect();
        mine.sort_unstable();
        reference.sort_unstable();
        (mine, reference)
    }

    #[test]
    fn same_hits_as_aho_corasick() {
        let kws = [
            "_token",
            "access_token",
            "token",
            "hf_",
            "sg.",
            "Password",
            "eyJ",
            "ghp_",
            "api_key",
            "key-",
        ];
        let input = b"ACCESS_TOKEN=x hf_ab SG.x password=PASSWORD eyj hf_ ghp_Ab api_key-1 token_token key-";
        let (mine, reference) = both(&kws, input);
        assert_eq!(mine, reference);
        assert!(mine.len() > 12);
        // Edges: keyword at the very end, input shorter than 4.
        assert_eq!(both(&kws, b"x hf_").0, both(&kws, b"x hf_").1);
        assert_eq!(both(&kws, b"hf_x").0.len(), 1);
        assert!(
            both(&kws, b"hf_").0.is_empty(),
            "a 3-byte keyword needs a token byte after it"
        );
        assert!(both(&kws, b"hf_ x").0.is_empty());
        assert!(both(&kws, b"hf").0.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_aho_corasick_on_random_input(
            input in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'a'), proptest::strategy::Just(b'K'), proptest::strategy::Just(b'e'),
                proptest::strategy::Just(b'y'), proptest::strategy::Just(b'_'), proptest::strategy::Just(b'-'),
                proptest::strategy::Just(0x7f_u8), proptest::strategy::Just(b'\x0d'), proptest::num::u8::ANY,
            ], 0..400)
        ) {
            let kws = ["key", "key_", "aey", "kEy-", "_ke", "yyyy", "ak\x7fey"];
            let (mine, reference) = both(&kws, &input);
            proptest::prop_assert_eq!(mine, reference);
        }
    }
}
