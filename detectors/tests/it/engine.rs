use keyward_detectors::{
    Canaries, Fingerprint, RuleSet, Scanner, Secret, StreamScanner, token_checksum,
};
use proptest::prelude::*;
use std::sync::Arc;

/// The built-in pack, compiled once per test binary.
fn rules() -> Arc<RuleSet> {
    static RULES: std::sync::LazyLock<Arc<RuleSet>> =
        std::sync::LazyLock::new(|| Arc::new(RuleSet::builtin().expect("built-in rules load")));
    RULES.clone()
}

fn gh(random: &str) -> String {
    format!("ghp_{random}{}", token_checksum(random.as_bytes()))
}

/// (input, expected (rule, line, column) list).
type Case = (String, Vec<(&'static str, u64, u64)>);

/// Engine cases as a table: (input, expected (rule, line, column) list).
#[test]
fn engine_table() {
    let tok = gh("R7kQx2mVn9PbT4wLc8ZsYd3HfJ6gAe");
    let cases: Vec<Case> = vec![
        (tok.clone(), vec![("github-pat-classic", 1, 1)]),
        (
            format!("a\nb\n  {tok}\n"),
            vec![("github-pat-classic", 3, 3)],
        ),
        // Keyword in upper case still triggers (case-insensitive keywords); the regex decides.
        (format!("GHP_ {tok}"), vec![("github-pat-classic", 1, 6)]),
        // Two occurrences, windows overlap: two matches, not four.
        (
            format!("{tok} {tok}"),
            vec![("github-pat-classic", 1, 1), ("github-pat-classic", 1, 42)],
        ),
        // Glued to a word: no boundary, no match.
        (format!("x{tok}"), vec![]),
        // Bad checksum is dropped.
        (tok.replace("1MOAmv", "1MOAmw"), vec![]),
    ];
    let scanner = Scanner::new(rules());
    for (input, expected) in cases {
        let got: Vec<_> = scanner
            .scan(input.as_bytes())
            .iter()
            .filter(|m| m.rule.as_str() == "github-pat-classic")
            .map(|m| (m.rule.as_str().to_owned(), m.line, m.column))
            .collect();
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(r, l, c)| (r.to_owned(), l, c))
            .collect();
        assert_eq!(got, expected, "input: {input:?}");
    }
}

#[test]
fn failed_validation_is_kept_only_when_asked() {
    let bad = gh("R7kQx2mVn9PbT4wLc8ZsYd3HfJ6gAe").replace("1MOAmv", "1MOAmw");
    let s = Scanner::builder(rules())
        .keep_failed_validation(true)
        .build();
    let m = s.scan(bad.as_bytes());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].validation.as_str(), "checksum-bad");
}

#[test]
fn canaries_are_found_exactly_and_can_be_removed_while_scanning() {
    let canaries = Arc::new(Canaries::new());
    let scanner = Scanner::builder(rules()).canaries(canaries.clone()).build();
    let value = b"v-approle-build-7f3a9c2e-pw:Zq8r2LmX0vT4".to_vec();
    let fp = canaries
        .add("lease database/creds/ci/abc", &Secret::new(value.clone()))
        .unwrap();
    assert_eq!(fp, Fingerprint::of("keyward-canary", &value));
    let mut input = b"log line\npassword used: ".to_vec();
    input.extend_from_slice(&value);
    let m = scanner.scan(&input);
    let c: Vec<_> = m
        .iter()
        .filter(|m| m.rule.as_str() == "keyward-canary")
        .collect();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].severity.as_str(), "critical");
    assert_eq!((c[0].line, c[0].column), (2, 16));
    assert_eq!(c[0].label.as_deref(), Some("lease database/creds/ci/abc"));
    assert!(
        !format!("{:?}", c[0]).contains("Zq8r2LmX0vT4"),
        "Debug must not show the secret"
    );
    // Another thread scanning while this one removes: the scan sees a consistent snapshot.
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..100 {
                let _ = scanner.scan(&input);
            }
        });
        assert!(canaries.remove(&fp));
    });
    assert!(
        scanner
            .scan(&input)
            .iter()
            .all(|m| m.rule.as_str() != "keyward-canary")
    );
    assert!(
        canaries
            .add("short", &Secret::new(b"abc".to_vec()))
            .is_err()
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Scanner>();
    check::<RuleSet>();
    check::<Canaries>();
    check::<keyward_detectors::Match>();
    check::<keyward_detectors::Error>();
}

fn stream_scan(scanner: &Scanner, input: &[u8], piece: usize) -> Vec<(String, usize, u64, u64)> {
    let mut out = Vec::new();
    let mut s = StreamScanner::with_chunk(scanner, 1);
    for c in input.chunks(piece.max(1)) {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    out.iter()
        .map(|m| (m.rule.to_string(), m.span.start, m.line, m.column))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The engine never panics on arbitrary bytes.
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let scanner = Scanner::new(rules());
        let _ = scanner.scan(&bytes);
    }

    /// Streaming in arbitrary pieces finds exactly what one whole scan finds, at the same
    /// offsets, lines and columns.
    #[test]
    fn streaming_equals_whole_scan(
        filler in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b' '), Just(b'\n'), Just(b'='), Just(b'x')], 0..80_000),
        positions in proptest::collection::vec(0usize..80_000, 0..6),
        piece in 1usize..30_000,
    ) {
        let mut input = filler;
        for (i, p) in positions.iter().enumerate() {
            let at = (*p).min(input.len());
            let tok = gh(&format!("R7kQx2mVn9PbT4wLc8ZsYd3HfJ6g{i:02}"));
            let ins = format!(" {tok} ");
            input.splice(at..at, ins.bytes());
        }
        let scanner = Scanner::new(rules());
        let whole: Vec<_> = scanner.scan(&input).iter().map(|m| (m.rule.to_string(), m.span.start, m.line, m.column)).collect();
        prop_assert_eq!(stream_scan(&scanner, &input, piece), whole);
    }
}
