//! [`Masker`]: a streaming filter that replaces known secret values in output with `***`.
//!
//! Built for build logs: `keyward-agent run` pipes a build's stdout and stderr through it so the
//! credentials the agent issued never reach the log, in any of the forms a build commonly prints
//! them (see [`Masker::new`]).
//!
//! # Streaming
//!
//! [`MaskStream::push`] takes arbitrary chunks (a value may be split over any number of them) and
//! writes everything it can prove is not the start of a value at once. It holds back only a
//! trailing run of bytes that is a proper prefix of some value form, which is at most
//! `longest form - 1` bytes. The caller flushes that tail after a short idle time with
//! [`MaskStream::flush_held`] (see its notes on what an idle flush may reveal) and at the end of
//! the stream with [`MaskStream::finish`]. Output that contains no value passes through byte for
//! byte, binary included.
//!
//! # Matching
//!
//! One Aho-Corasick automaton over every form of every value, leftmost-longest: where two forms
//! overlap, the one that starts first wins, and among those starting at the same byte the longest
//! (so padded base64 wins over the same value unpadded, and a value wins over a shorter value it
//! starts with). A match is only masked once every form that could start at the same byte is
//! fully visible, so chunk boundaries never change the result.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::fmt;
use zeroize::Zeroizing;

/// Values shorter than this many bytes are not masked.
///
/// A short value (a port, a username like `admin`, a two-letter region) occurs by accident all
/// over a build log; replacing every occurrence would make the log unreadable and would itself
/// tell a reader what the value is. Credentials worth masking (tokens, passwords, keys) are far
/// longer.
pub const MIN_MASK_LEN: usize = 6;

/// What a masked value is replaced with.
pub const MASK: &[u8] = b"***";

/// Width of the sampled windows of the prefilter.
const GRAM: usize = 4;
/// Size of the prefilter's bitmap (512 KiB: about 10 % of bits set for 5,000 forms of 40 bytes,
/// two bits per window).
const GRAM_LOG: u32 = 22;
const GRAM_BITS: usize = 1 << GRAM_LOG;

/// Two independent bit positions of a window: a window is "in" the bitmap only when both bits
/// are set (a Bloom filter with two hashes: ~1 % false hits where one hash gave ~5 %).
fn gram_hash(w: &[u8]) -> (usize, usize) {
    let x = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    (
        (x.wrapping_mul(0x9E37_79B1) >> (32 - GRAM_LOG)) as usize,
        (x.wrapping_mul(0x85EB_CA77) >> (32 - GRAM_LOG)) as usize,
    )
}

/// Bytes that percent-encoding leaves alone (RFC 3986 "unreserved").
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn percent_encode(value: &[u8], upper: bool) -> Vec<u8> {
    let hex: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if unreserved(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
    }
    out
}

/// The forms of one value that are masked: the value itself; base64 standard and base64url,
/// each padded and unpadded; percent-encoded (upper- and lower-case hex); JSON-escaped (the
/// inside of a JSON string, for UTF-8 values). Duplicates are removed by the caller.
fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out = vec![Zeroizing::new(value.to_vec())];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(Zeroizing::new(engine.encode(value).into_bytes()));
    }
    out.push(Zeroizing::new(percent_encode(value, true)));
    out.push(Zeroizing::new(percent_encode(value, false)));
    if let Ok(s) = std::str::from_utf8(value) {
        // serde_json escapes `"`, `\` and control characters; strip the surrounding quotes.
        let quoted = Zeroizing::new(serde_json::to_string(s).unwrap_or_default());
        if quoted.len() >= 2 {
            out.push(Zeroizing::new(
                quoted.as_bytes()[1..quoted.len() - 1].to_vec(),
            ));
        }
    }
    out
}

/// A compiled set of secret values to mask. Cheap to share (`&Masker`) between streams.
///
/// The values and their encoded forms are kept in zeroizing buffers. NOTE: the Aho-Corasick
/// automaton necessarily holds the pattern bytes in its own transition tables, which are not
/// zeroized when it is dropped; keep a `Masker` only as long as the values are live.
/// `Debug` prints counts only.
pub struct Masker {
    /// `None` when there is nothing to mask (every stream is then a pass-through).
    automaton: Option<AhoCorasick>,
    /// Every form, sorted and deduplicated: answers "is this tail a prefix of some form?".
    sorted: Vec<Zeroizing<Vec<u8>>>,
    /// `starts[b]`: some form begins with byte `b`.
    starts: [bool; 256],
    /// Length of the longest form.
    max_len: usize,
    /// Sampling filter: bit `h(g)` is set for every 4-byte substring `g` of every form.
    grams: Vec<u64>,
    /// Distance between sampled windows: `shortest form - GRAM + 1`, so every occurrence of a
    /// form contains a sampled window.
    step: usize,
    values: usize,
    skipped_short: usize,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("values", &self.values)
            .field("forms", &self.sorted.len())
            .field("skipped_short", &self.skipped_short)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// Compiles a masker for `values`. Values shorter than [`MIN_MASK_LEN`] are skipped (see
    /// there; [`Masker::skipped_short`] counts them). Every value is masked in these forms:
    /// as is; base64 (standard and URL-safe alphabets, padded and unpadded); percent-encoded
    /// (every byte outside RFC 3986's unreserved set as `%XX`, upper- or lower-case hex); and
    /// JSON-escaped (UTF-8 values only). Base64 is matched only where the value starts the
    /// encoded text (as in `base64 <<< "$TOKEN"` or an `Authorization: Basic` header of the
    /// value alone); a value in the middle of a larger base64 blob is not found.
    pub fn new<I, V>(values: I) -> Masker
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let mut sorted = Vec::new();
        let mut count = 0;
        let mut skipped_short = 0;
        for v in values {
            let v = v.as_ref();
            if v.len() < MIN_MASK_LEN {
                skipped_short += 1;
                continue;
            }
            count += 1;
            sorted.extend(forms(v));
        }
        sorted.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        sorted.dedup_by(|a, b| a.as_slice() == b.as_slice());
        let mut starts = [false; 256];
        for f in &sorted {
            starts[usize::from(f[0])] = true;
        }
        let max_len = sorted.iter().map(|f| f.len()).max().unwrap_or(0);
        let min_len = sorted.iter().map(|f| f.len()).min().unwrap_or(GRAM);
        let mut grams = vec![0_u64; GRAM_BITS / 64];
        for f in &sorted {
            for w in f.windows(GRAM) {
                let (a, b) = gram_hash(w);
                grams[a / 64] |= 1 << (a % 64);
                grams[b / 64] |= 1 << (b % 64);
            }
        }
        let automaton = if sorted.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(sorted.iter().map(|f| f.as_slice()))
                    .or_else(|_| {
                        // Too many states for a DFA: let the library pick an NFA.
                        AhoCorasickBuilder::new()
                            .match_kind(MatchKind::LeftmostLongest)
                            .build(sorted.iter().map(|f| f.as_slice()))
                    })
                    .expect("literal patterns always compile"),
            )
        };
        Masker {
            automaton,
            sorted,
            starts,
            max_len,
            grams,
            step: min_len + 1 - GRAM,
            values: count,
            skipped_short,
        }
    }

    /// Number of values masked.
    pub fn len(&self) -> usize {
        self.values
    }

    /// Whether nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// Number of values skipped as shorter than [`MIN_MASK_LEN`].
    pub fn skipped_short(&self) -> usize {
        self.skipped_short
    }

    /// The longest number of bytes a stream ever holds back: longest form minus one.
    pub fn max_held(&self) -> usize {
        self.max_len.saturating_sub(1)
    }

    /// Masks a complete buffer in one go.
    pub fn mask_all(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut s = self.stream();
        s.push(input, &mut out);
        s.finish(&mut out);
        out
    }

    /// A new stream (one per output stream: stdout and stderr each get their own).
    pub fn stream(&self) -> MaskStream<'_> {
        MaskStream {
            masker: self,
            held: Zeroizing::new(Vec::new()),
            ctx: 0,
        }
    }

    /// Every leftmost-longest match in `buf`, as `(start, end)`.
    ///
    /// Instead of running the automaton over all of `buf`, samples a 4-byte window every
    /// `step` bytes: a form of length `>= step + 3` always contains a sampled window, so only
    /// the surroundings of windows found in the bitmap (all within one longest form of it) are
    /// searched. Overlapping surroundings are merged, so a match never spans two regions and the
    /// result is the same as one search over `buf`.
    fn hits<'a>(
        &'a self,
        ac: &'a AhoCorasick,
        buf: &'a [u8],
    ) -> impl Iterator<Item = aho_corasick::Match> + 'a {
        let n = buf.len();
        let reach = self.max_len;
        let mut regions: Vec<(usize, usize)> = Vec::new();
        let mut j = 0;
        while j + GRAM <= n {
            let (a, b) = gram_hash(&buf[j..j + GRAM]);
            if self.grams[a / 64] & (1 << (a % 64)) != 0
                && self.grams[b / 64] & (1 << (b % 64)) != 0
            {
                let lo = (j + GRAM).saturating_sub(reach);
                let hi = (j + reach).min(n);
                match regions.last_mut() {
                    Some(last) if last.1 >= lo => last.1 = hi,
                    _ => regions.push((lo, hi)),
                }
            }
            j += self.step;
        }
        regions
            .into_iter()
            .flat_map(move |(lo, hi)| ac.find_iter(aho_corasick::Input::new(buf).range(lo..hi)))
    }

    /// Whether `tail` (non-empty) is a prefix of some form (including a whole form).
    fn is_prefix(&self, tail: &[u8]) -> bool {
        if !self.starts[usize::from(tail[0])] {
            return false;
        }
        let i = self.sorted.partition_point(|f| f.as_slice() < tail);
        self.sorted.get(i).is_some_and(|f| f.starts_with(tail))
    }
}

/// How [`MaskStream::process`] treats the end of the buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// More input follows.
    Push,
    /// The producer is idle: finish matches, release short prefixes.
    Idle,
    /// End of stream.
    Eof,
}

/// The streaming state of one output stream. See the module documentation.
pub struct MaskStream<'m> {
    masker: &'m Masker,
    /// Bytes kept for matching: `held[..ctx]` were already written out (context kept after an
    /// idle flush), `held[ctx..]` are held back.
    held: Zeroizing<Vec<u8>>,
    ctx: usize,
}

impl fmt::Debug for MaskStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskStream")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl MaskStream<'_> {
    /// Masks `input`, appending to `out` every byte that can no longer be part of a value.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.masker.automaton.is_none() {
            out.extend_from_slice(input);
            return;
        }
        if self.held.is_empty() {
            let keep = self.process(input, out, Mode::Push);
            self.held.extend_from_slice(&input[keep.0..]);
            self.ctx = keep.1;
        } else {
            let mut buf = std::mem::take(&mut self.held);
            buf.extend_from_slice(input);
            let keep = self.process(&buf, out, Mode::Push);
            self.held.extend_from_slice(&buf[keep.0..]);
            self.ctx = keep.1;
        }
    }

    /// Number of bytes held back (written by the command, not yet passed on).
    pub fn pending(&self) -> usize {
        self.held.len() - self.ctx
    }

    /// Idle flush: call when the producer has written nothing for a short while (50 ms in
    /// `keyward-agent run`) and [`pending`](Self::pending) is non-zero.
    ///
    /// Complete values in the held tail are masked; the rest is written out, except a tail of
    /// at least [`MIN_MASK_LEN`] bytes that begins some value form, which stays held (text
    /// matching that many bytes of a random credential by accident is vanishingly rare, so in
    /// practice this is a value being written in pieces). A shorter prefix is written, and kept
    /// as context: if the rest of the value follows, the rest is masked. So a pause in the
    /// middle of a value reveals at most `MIN_MASK_LEN - 1` of its bytes, and only when the pause
    /// falls within them.
    pub fn flush_held(&mut self, out: &mut Vec<u8>) {
        if self.pending() == 0 {
            return;
        }
        let buf = std::mem::take(&mut self.held);
        let keep = self.process(&buf, out, Mode::Idle);
        self.held.extend_from_slice(&buf[keep.0..]);
        self.ctx = keep.1;
    }

    /// End of stream: masks complete values and writes everything still held (a partial value
    /// at the very end is written as is — it never became a value).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.held.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.held);
        self.process(&buf, out, Mode::Eof);
        self.ctx = 0;
    }

    /// Masks `buf`, whose first `self.ctx` bytes were written already; returns where the new
    /// held region starts in `buf` and how many of its bytes are already written.
    fn process(&self, buf: &[u8], out: &mut Vec<u8>, mode: Mode) -> (usize, usize) {
        let m = self.masker;
        let Some(ac) = &m.automaton else {
            out.extend_from_slice(&buf[self.ctx..]);
            return (buf.len(), 0);
        };
        let n = buf.len();
        let mut pos = self.ctx;
        // End of the last masked match: no later match may start before it.
        let mut last_end = 0;
        // Start of a match that is complete but may still grow (or be beaten by a longer one).
        let mut limit = n;
        for hit in m.hits(ac, buf) {
            if mode == Mode::Push && hit.start() + m.max_len > n {
                limit = hit.start();
                break;
            }
            if hit.end() > pos {
                if hit.start() > pos {
                    out.extend_from_slice(&buf[pos..hit.start()]);
                }
                out.extend_from_slice(MASK);
                pos = hit.end();
            }
            last_end = hit.end();
        }
        if mode == Mode::Eof {
            if pos < n {
                out.extend_from_slice(&buf[pos..]);
            }
            return (n, 0);
        }
        // The first position from which the rest of the buffer could still begin a form.
        let lo = last_end.max(n.saturating_sub(m.max_len.saturating_sub(1)));
        let live = (lo..limit)
            .find(|&s| m.is_prefix(&buf[s..]))
            .unwrap_or(limit);
        let hold = if mode == Mode::Idle && n - live < MIN_MASK_LEN {
            // Release the short prefix but keep it as context.
            if pos < n {
                out.extend_from_slice(&buf[pos..]);
            }
            return (live, n - live);
        } else {
            live
        };
        if hold > pos {
            out.extend_from_slice(&buf[pos..hold]);
            pos = hold;
        }
        (hold, pos - hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "s3cr3t/tok+en=\"x\"&y";

    fn all(m: &Masker, chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = m.stream();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn masks_each_form() {
        let m = Masker::new([V]);
        let b64 = STANDARD.encode(V);
        let b64np = STANDARD_NO_PAD.encode(V);
        let b64u = URL_SAFE.encode(V);
        let b64unp = URL_SAFE_NO_PAD.encode(V);
        let url = String::from_utf8(percent_encode(V.as_bytes(), true)).unwrap();
        let urll = String::from_utf8(percent_encode(V.as_bytes(), false)).unwrap();
        let json = serde_json::to_string(V).unwrap();
        assert_eq!(url, "s3cr3t%2Ftok%2Ben%3D%22x%22%26y");
        assert_eq!(json, r#""s3cr3t/tok+en=\"x\"&y""#);
        for form in [
            V,
            &b64,
            &b64np,
            &b64u,
            &b64unp,
            &url,
            &urll,
            &json[1..json.len() - 1],
        ] {
            let text = format!("before {form} after\n");
            let got = String::from_utf8(m.mask_all(text.as_bytes())).unwrap();
            assert_eq!(got, "before *** after\n", "form {form:?}");
        }
        // Whole JSON string keeps its quotes.
        let got = m.mask_all(format!("{{\"t\":{json}}}").as_bytes());
        assert_eq!(got, br#"{"t":"***"}"#);
    }

    #[test]
    fn value_split_at_every_point() {
        let m = Masker::new([V, "another-value-42"]);
        let b64 = STANDARD.encode(V);
        for form in [V, b64.as_str(), "another-value-42"] {
            let text = format!("x={form};\nnext line {form}");
            let bytes = text.as_bytes();
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    let got = all(&m, &[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                    assert_eq!(got, b"x=***;\nnext line ***", "split {i},{j} of {form:?}");
                }
            }
        }
    }

    #[test]
    fn split_with_idle_flush_between() {
        let m = Masker::new([V]);
        let bytes = format!("x={V};").into_bytes();
        for i in 0..=bytes.len() {
            let mut s = m.stream();
            let mut out = Vec::new();
            s.push(&bytes[..i], &mut out);
            s.flush_held(&mut out);
            s.push(&bytes[i..], &mut out);
            s.finish(&mut out);
            let out = String::from_utf8(out).unwrap();
            // At most MIN_MASK_LEN - 1 bytes of the value escape, and the rest is masked.
            assert!(out.ends_with("***;"), "split {i}: {out}");
            assert!(!out.contains(&V[..MIN_MASK_LEN]), "split {i}: {out}");
        }
    }

    #[test]
    fn line_buffered_output_is_not_delayed() {
        let m = Masker::new([V]);
        let mut s = m.stream();
        let mut out = Vec::new();
        s.push(b"compiling foo v1.0\n", &mut out);
        assert_eq!(out, b"compiling foo v1.0\n");
        assert_eq!(s.pending(), 0);
        // A tail that begins the value is held, and released by an idle flush.
        out.clear();
        s.push(b"progress: s3", &mut out);
        assert_eq!(out, b"progress: ");
        assert_eq!(s.pending(), 2);
        s.flush_held(&mut out);
        assert_eq!(out, b"progress: s3");
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn sampled_search_equals_a_full_search() {
        // Short values over a small alphabet: many overlaps and near misses for the prefilter.
        let mut state = 0x2545_f491_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut pick = |n: u32| usize::try_from(next() % n).unwrap();
        let alphabet = b"abc=+/\"\n";
        let values: Vec<Vec<u8>> = (0..20)
            .map(|i| (0..6 + i % 9).map(|_| alphabet[pick(3)]).collect())
            .collect();
        let m = Masker::new(&values);
        let ac = m.automaton.as_ref().unwrap();
        let mut matched = 0;
        for _ in 0..200 {
            let text: Vec<u8> = (0..400).map(|_| alphabet[pick(4)]).collect();
            let fast: Vec<_> = m.hits(ac, &text).map(|h| h.span()).collect();
            let full: Vec<_> = ac.find_iter(&text).map(|h| h.span()).collect();
            matched += full.len();
            assert_eq!(fast, full);
            let split = pick(400);
            let mut s = m.stream();
            let mut out = Vec::new();
            s.push(&text[..split], &mut out);
            s.push(&text[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, m.mask_all(&text));
        }
        assert!(matched > 50, "{matched} matches");
    }

    #[test]
    fn overlapping_values() {
        // One value is a prefix of another; two values overlap in the text.
        let m = Masker::new(["abcdef123", "abcdef123456", "123456zzz"]);
        assert_eq!(m.mask_all(b"[abcdef123456]"), b"[***]");
        assert_eq!(m.mask_all(b"[abcdef123]"), b"[***]");
        assert_eq!(m.mask_all(b"[abcdef123456zzz]"), b"[***zzz]");
        assert_eq!(m.mask_all(b"[abcdef12345]"), b"[***45]");
        let text = b"[abcdef123456zzz] [abcdef123]";
        for i in 0..=text.len() {
            assert_eq!(
                all(&m, &[&text[..i], &text[i..]]),
                b"[***zzz] [***]",
                "split {i}"
            );
        }
    }

    #[test]
    fn binary_without_values_is_unchanged() {
        let m = Masker::new([V]);
        let mut state = 0x1234_5678_u32;
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect();
        for chunk in [1, 7, 4096, 100_000] {
            let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
            assert_eq!(all(&m, &chunks), data, "chunk {chunk}");
        }
    }

    #[test]
    fn partial_prefix_at_eof_is_written() {
        let m = Masker::new([V]);
        let mut s = m.stream();
        let mut out = Vec::new();
        s.push(b"end: s3cr3t/tok", &mut out);
        assert_eq!(out, b"end: ");
        s.finish(&mut out);
        assert_eq!(out, b"end: s3cr3t/tok");
    }

    #[test]
    fn short_values_are_skipped_and_debug_shows_counts() {
        let m = Masker::new(["abc", V]);
        assert_eq!(m.len(), 1);
        assert_eq!(m.skipped_short(), 1);
        assert_eq!(m.mask_all(b"abc"), b"abc");
        let dbg = format!("{m:?} {:?}", m.stream());
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("abc"), "{dbg}");
        let empty = Masker::new(Vec::<Vec<u8>>::new());
        assert!(empty.is_empty());
        assert_eq!(empty.mask_all(b"anything"), b"anything");
    }
}
