//! [`Confidence`]: how sure keyward is that a match is a live credential, and the
//! [`Reasons`] behind it.
//!
//! A match starts at its rule's level: a provider prefix or a checksum/structure check is
//! `high`, a keyword-and-value rule `medium`. Then each kind of doubt lowers it one step:
//!
//! - the **value** looks made up: dictionary words, repeated or sequential characters, a
//!   template or environment reference, its own key's name, a well-known documentation value;
//! - the **context** is not production: a test, fixture, example, mock or documentation path,
//!   or test code around the line.
//!
//! Nothing is dropped here: a fixture credential is still reported, at `low`, because fixtures
//! are sometimes real. Reports hide `low` unless asked.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::fmt;
use std::sync::LazyLock;

/// How sure keyward is that a finding is a real credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Confidence {
    /// Probably test data, documentation or a made-up value; shown with `--confidence low`.
    Low,
    /// A plausible credential.
    #[default]
    Medium,
    /// A credential by its structure: a provider prefix, a checksum, a parsed key.
    High,
}

impl Confidence {
    /// Every level, lowest first.
    pub const ALL: [Confidence; 3] = [Confidence::Low, Confidence::Medium, Confidence::High];

    /// `low`, `medium` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// Parses `low`, `medium` or `high`.
    pub fn parse(s: &str) -> Option<Confidence> {
        Confidence::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// One step lower (`low` stays `low`).
    #[must_use]
    pub fn lower(self) -> Confidence {
        match self {
            Confidence::High => Confidence::Medium,
            Confidence::Medium | Confidence::Low => Confidence::Low,
        }
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reasons behind a confidence level: a small set of flags, each with a stable name that
/// JSON reports carry.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reasons(u16);

/// Each reason's flag, name and kind. The order is the order names are written in.
const REASONS: [(Reasons, &str, Kind); 13] = [
    (Reasons::CHECKSUM_VERIFIED, "checksum-verified", Kind::Rule),
    (Reasons::PROVIDER_PREFIX, "provider-prefix", Kind::Rule),
    (Reasons::KEYWORD_AND_VALUE, "keyword-and-value", Kind::Rule),
    (Reasons::DICTIONARY_WORDS, "dictionary-words", Kind::Value),
    (Reasons::REPETITIVE_VALUE, "repetitive-value", Kind::Value),
    (
        Reasons::TEMPLATE_REFERENCE,
        "template-reference",
        Kind::Value,
    ),
    (Reasons::KEY_NAME_AS_VALUE, "key-name-as-value", Kind::Value),
    (
        Reasons::DOCUMENTATION_VALUE,
        "documentation-value",
        Kind::Value,
    ),
    (Reasons::TEST_CODE, "test-code", Kind::Context),
    (Reasons::TEST_PATH, "test-path", Kind::Context),
    (
        Reasons::DOCUMENTATION_PATH,
        "documentation-path",
        Kind::Context,
    ),
    (
        Reasons::SEEN_IN_DOCUMENTATION,
        "seen-in-documentation",
        Kind::Context,
    ),
    (Reasons::VALIDATION_FAILED, "validation-failed", Kind::Value),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rule,
    Value,
    Context,
}

impl Reasons {
    /// No reasons.
    pub const NONE: Reasons = Reasons(0);
    /// The rule's validator verified a checksum or structure.
    pub const CHECKSUM_VERIFIED: Reasons = Reasons(1);
    /// The rule's secret starts with a fixed provider prefix (`ghp_`, `AKIA`, `xoxb-`).
    pub const PROVIDER_PREFIX: Reasons = Reasons(1 << 1);
    /// The rule matches a keyword and a value near it, with no structure to check.
    pub const KEYWORD_AND_VALUE: Reasons = Reasons(1 << 2);
    /// The value is made of dictionary words (`supersecretpassword`).
    pub const DICTIONARY_WORDS: Reasons = Reasons(1 << 3);
    /// The value has long runs of one character or of consecutive characters.
    pub const REPETITIVE_VALUE: Reasons = Reasons(1 << 4);
    /// The value holds a template or environment reference (`%HTTPPORT#`, `pass${N}`).
    pub const TEMPLATE_REFERENCE: Reasons = Reasons(1 << 5);
    /// The value repeats its key's name (`password: password`), or is a variable name.
    pub const KEY_NAME_AS_VALUE: Reasons = Reasons(1 << 6);
    /// The value is a well-known documentation value, or says it is fake or a test.
    pub const DOCUMENTATION_VALUE: Reasons = Reasons(1 << 7);
    /// Test code surrounds the line (a test function, `#[test]`, `assert`).
    pub const TEST_CODE: Reasons = Reasons(1 << 8);
    /// The path is a test, fixture, example or mock path.
    pub const TEST_PATH: Reasons = Reasons(1 << 9);
    /// The path is documentation (`docs/`, `README.md`, a man page).
    pub const DOCUMENTATION_PATH: Reasons = Reasons(1 << 10);
    /// The same secret also appears in documentation elsewhere.
    pub const SEEN_IN_DOCUMENTATION: Reasons = Reasons(1 << 11);
    /// The rule's validator rejected the value (kept with `--keep-failed-validation`).
    pub const VALIDATION_FAILED: Reasons = Reasons(1 << 12);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Reasons) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the flags set (`test-path`, …), in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        REASONS
            .iter()
            .filter(move |(flag, _, _)| self.0 & flag.0 != 0)
            .map(|(_, name, _)| *name)
    }

    /// Parses a name written by [`Reasons::names`].
    pub fn parse(name: &str) -> Option<Reasons> {
        REASONS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(flag, _, _)| *flag)
    }

    fn any_of(self, kind: Kind) -> bool {
        REASONS
            .iter()
            .any(|(flag, _, k)| *k == kind && self.0 & flag.0 != 0)
    }
}

impl std::ops::BitOr for Reasons {
    type Output = Reasons;
    fn bitor(self, rhs: Reasons) -> Reasons {
        Reasons(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Reasons {
    fn bitor_assign(&mut self, rhs: Reasons) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// A rule's starting level and the reasons found so far; [`Assessment::level`] is the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assessment {
    /// The level the rule starts at.
    pub base: Confidence,
    /// Why.
    pub reasons: Reasons,
}

impl Assessment {
    /// The level: the base, one step lower for any doubt about the value, one more for any
    /// doubt about the context.
    pub fn level(&self) -> Confidence {
        let mut level = self.base;
        if self.reasons.any_of(Kind::Value) {
            level = level.lower();
        }
        if self.reasons.any_of(Kind::Context) {
            level = level.lower();
        }
        level
    }

    /// The same with `more` reasons.
    #[must_use]
    pub fn with(self, more: Reasons) -> Assessment {
        Assessment {
            base: self.base,
            reasons: self.reasons | more,
        }
    }
}

/// Doubts about a secret's value. `before` is the text in front of it on its line (the key).
pub fn value_reasons(secret: &[u8], before: &[u8]) -> Reasons {
    let mut r = Reasons::NONE;
    // Long values (PEM bodies, JWTs, base64 blobs) hold short words and runs by chance.
    if secret.len() > 100 {
        return r;
    }
    if is_words(secret) {
        r |= Reasons::DICTIONARY_WORDS;
    }
    if repetitive(secret) {
        r |= Reasons::REPETITIVE_VALUE;
    }
    if has_template(secret) {
        r |= Reasons::TEMPLATE_REFERENCE;
    }
    if names_its_key(secret, before) {
        r |= Reasons::KEY_NAME_AS_VALUE;
    }
    if DOC_VALUES.is_match(secret) {
        r |= Reasons::DOCUMENTATION_VALUE;
    }
    r
}

/// Words that make up made-up passwords and keys. Matched whole, after lowercasing; a value is
/// "dictionary words" when its letters split into these with at most a few digits around.
const WORDS: &[&str] = &[
    "access",
    "account",
    "admin",
    "administrator",
    "alpha",
    "api",
    "app",
    "apple",
    "auth",
    "backup",
    "bar",
    "baz",
    "beta",
    "blah",
    "build",
    "cat",
    "change",
    "client",
    "cloud",
    "code",
    "correct",
    "data",
    "database",
    "db",
    "default",
    "demo",
    "deploy",
    "dev",
    "develop",
    "development",
    "dog",
    "dragon",
    "fake",
    "foo",
    "football",
    "foobar",
    "god",
    "guest",
    "hello",
    "horse",
    "hunter",
    "internal",
    "jenkins",
    "key",
    "letmein",
    "local",
    "localhost",
    "login",
    "love",
    "master",
    "me",
    "monkey",
    "my",
    "mysql",
    "new",
    "none",
    "not",
    "null",
    "open",
    "oracle",
    "p",
    "pass",
    "passphrase",
    "passwd",
    "password",
    "passwords",
    "postgres",
    "private",
    "prod",
    "production",
    "pwd",
    "qux",
    "qwerty",
    "real",
    "redis",
    "root",
    "s",
    "sa",
    "secret",
    "secrets",
    "secure",
    "server",
    "service",
    "sesame",
    "shadow",
    "some",
    "staging",
    "super",
    "superuser",
    "sys",
    "system",
    "temp",
    "test",
    "tester",
    "testing",
    "the",
    "token",
    "top",
    "trust",
    "user",
    "username",
    "value",
    "very",
    "welcome",
    "world",
    "battery",
    "staple",
    "abc",
    "admin",
    "dummy",
    "invalid",
    "is",
    "a",
    "this",
    "it",
    "to",
    "of",
    "and",
    "for",
    "in",
    "on",
    "with",
    "no",
    "one",
];

static WORD_SET: LazyLock<std::collections::HashSet<&'static [u8]>> =
    LazyLock::new(|| WORDS.iter().map(|w| w.as_bytes()).collect());

/// Whether the letters of `secret` split into [`WORDS`], allowing digits and a few symbols
/// between them (`Password123!`, `super_secret`). Needs at least 4 letters and letters making
/// up most of the value.
fn is_words(secret: &[u8]) -> bool {
    let letters = secret.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters < 4 || letters * 10 < secret.len() * 6 {
        return false;
    }
    secret
        .split(|b| !b.is_ascii_alphabetic())
        .filter(|run| !run.is_empty())
        .all(|run| segments(&run.to_ascii_lowercase()))
}

/// Whether `run` (lowercase letters) is a concatenation of [`WORDS`]. Dynamic programming over
/// prefixes; runs are short (the value is at most 100 bytes).
fn segments(run: &[u8]) -> bool {
    let mut ok = vec![false; run.len() + 1];
    ok[0] = true;
    for end in 1..=run.len() {
        ok[end] = (0..end).any(|start| ok[start] && WORD_SET.contains(&run[start..end]));
    }
    ok[run.len()]
}

/// A run of 4 or more identical bytes, or of 5 or more consecutive ones (`12345`, `abcde`).
fn repetitive(secret: &[u8]) -> bool {
    let (mut same, mut up, mut down) = (1, 1, 1);
    for w in secret.windows(2) {
        same = if w[1] == w[0] { same + 1 } else { 1 };
        up = if w[1].wrapping_sub(w[0]) == 1 && w[1].is_ascii_alphanumeric() {
            up + 1
        } else {
            1
        };
        down = if w[0].wrapping_sub(w[1]) == 1 && w[1].is_ascii_alphanumeric() {
            down + 1
        } else {
            1
        };
        if same >= 4 || up >= 5 || down >= 5 {
            return true;
        }
    }
    false
}

/// `${…}`, `$(…)`, `$NAME`, `%NAME%`/`%NAME#`, `@NAME@`, `{{`, `#{`, `<%` anywhere in the value.
/// URL escapes (`%2B5z…` in a signature) are not references: a `%` or `@` name must contain a
/// letter and end at `%`, `#` or `@`, or at the end of the value.
fn has_template(secret: &[u8]) -> bool {
    for (i, &b) in secret.iter().enumerate() {
        let next = secret.get(i + 1).copied().unwrap_or(0);
        let name = &secret[i + 1..];
        let len = name
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
            .count();
        let closed = |ends: &[u8]| {
            len >= 3
                && name[..len].iter().any(u8::is_ascii_uppercase)
                && name.get(len).is_none_or(|c| ends.contains(c))
        };
        match b {
            b'$' if next == b'{' || next == b'(' || len >= 2 => return true,
            b'%' if closed(b"%#") => return true,
            b'@' if closed(b"@") => return true,
            b'{' | b'#' if next == b'{' => return true,
            b'<' if next == b'%' => return true,
            _ => {}
        }
    }
    false
}

/// Whether the value is its key's name (`password = password`, `DB_PASS=db_pass`), or looks
/// like a variable name itself (`DB_PASSWORD`).
fn names_its_key(secret: &[u8], before: &[u8]) -> bool {
    let norm = |s: &[u8]| -> Vec<u8> {
        s.iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_lowercase)
            .collect()
    };
    let value = norm(secret);
    if value.len() < 4 {
        return false;
    }
    let key = norm(&before[before.len().saturating_sub(80)..]);
    if memchr::memmem::find(&key, &value).is_some() {
        return true;
    }
    // An upper-case identifier with an underscore is a name, not a value.
    secret.len() <= 40
        && secret.contains(&b'_')
        && secret
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        && secret[0].is_ascii_uppercase()
}

/// Values that say they are not real, and values documentation is known to use.
const DOC_VALUE_WORDS: &[&str] = &[
    "test",
    "fake",
    "mock",
    "demo",
    "dummy",
    "invalid",
    "notreal",
    "not_real",
    "not-real",
    "not-a-real",
    "not_a_real",
    "notasecret",
    "not-a-secret",
    "not_a_secret",
    "bogus",
    "foobar",
    "lorem",
    "hunter2",
    "s3cr3t",
    "p@ssw0rd",
    "p4ssw0rd",
    "passw0rd",
    "pa55word",
    "secret123",
    "password123",
    "opensesame",
    "correcthorse",
    // Stripe's documentation keys, in every tutorial.
    "4ec39hqlyjwdarjtt1zdp7dc",
    "tyoomqauvdedq54nitphi7jx",
];

static DOC_VALUES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(DOC_VALUE_WORDS)
        .expect("documentation values compile")
});

/// Markers of test code: a test function, a test attribute or an assertion. Matched
/// case-sensitively, in the bytes before a match (bounded) and on its line.
const TEST_MARKERS: &[&str] = &[
    "#[test]",
    "#[cfg(test)]",
    "#[tokio::test",
    "mod tests",
    "def test",
    "func Test",
    "@Test",
    "@pytest",
    "unittest",
    "[Fact]",
    "[Theory]",
    "[Test]",
    "[TestMethod]",
    "TEST(",
    "TEST_F(",
    "describe(",
    "it(\"",
    "it('",
    "test(\"",
    "test('",
    "assert",
    "expect(",
    "should.",
];

static TESTS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostFirst)
        .build(TEST_MARKERS)
        .expect("test markers compile")
});

/// How far back test markers are looked for. Tests are usually short and near their data; a
/// `mod tests` further up a long file is missed, which costs confidence, never a finding.
const TEST_LOOKBACK: usize = 8 * 1024;

/// Whether test code surrounds `at` in `input`: a marker in the bytes before it (bounded), or on
/// its line after it.
pub fn in_test_code(input: &[u8], at: usize) -> bool {
    let at = at.min(input.len());
    let end = memchr::memchr(b'\n', &input[at..]).map_or(input.len(), |i| at + i);
    let start = at.saturating_sub(TEST_LOOKBACK);
    TESTS.find_iter(&input[start..end]).any(|m| {
        // `it("` and `test("` must stand alone, not end `submit("` or `latest("`.
        let pos = start + m.start();
        let word = matches!(input[pos], b'i' | b't' | b'd' | b'e');
        !word || pos == 0 || !(input[pos - 1].is_ascii_alphanumeric() || input[pos - 1] == b'_')
    })
}

/// Doubts a path raises: a test, fixture, example or mock path, or documentation.
///
/// # Example
/// ```
/// use keyward_detectors::{Reasons, path_reasons};
/// assert_eq!(path_reasons("src/tests/fixtures/creds.json"), Reasons::TEST_PATH);
/// assert_eq!(path_reasons("docs/setup.md"), Reasons::DOCUMENTATION_PATH);
/// assert_eq!(path_reasons("deploy/prod.env"), Reasons::NONE);
/// ```
pub fn path_reasons(path: &str) -> Reasons {
    let mut r = Reasons::NONE;
    let lower = path.to_ascii_lowercase();
    // Archive members (`app.jar!config/x`) and image paths are judged on every component.
    let parts: Vec<&str> = lower.split(['/', '\\', '!']).collect();
    let (dirs, file) = parts.split_at(parts.len().saturating_sub(1));
    let file = file.first().copied().unwrap_or("");
    let test_dir = |d: &str| {
        matches!(
            d,
            "test"
                | "tests"
                | "testing"
                | "testdata"
                | "test-data"
                | "test_data"
                | "testutil"
                | "testutils"
                | "__tests__"
                | "__mocks__"
                | "spec"
                | "specs"
                | "fixture"
                | "fixtures"
                | "mock"
                | "mocks"
                | "example"
                | "examples"
                | "sample"
                | "samples"
                | "demo"
                | "demos"
                | "benches"
                | "testcases"
                | "e2e"
        ) || d.ends_with("_test")
            || d.ends_with("-test")
            || d.ends_with("_tests")
            || d.ends_with("-tests")
            || d.starts_with("test_")
            || d.starts_with("test-")
    };
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    let test_file = stem.starts_with("test_")
        || stem.starts_with("test-")
        || stem.ends_with("_test")
        || stem.ends_with("-test")
        || matches!(stem.rsplit_once('.'), Some((_, "test" | "spec")))
        || stem.ends_with("_spec")
        || stem.ends_with("tests")
        || (stem.ends_with("test") && path.contains("Test"))
        || stem.contains("fixture")
        || stem.contains("example")
        || stem.contains("sample")
        || stem.contains("mock");
    if dirs.iter().any(|d| test_dir(d)) || test_file {
        r |= Reasons::TEST_PATH;
    }
    let doc_dir = |d: &str| matches!(d, "doc" | "docs" | "documentation" | "man" | "manual");
    let doc_file = matches!(
        ext,
        "md" | "markdown" | "rst" | "adoc" | "asciidoc" | "txt" | "pod" | "texi" | "html"
    ) || (ext.len() == 1 && ext.as_bytes()[0].is_ascii_digit() && ext != "0")
        || stem.starts_with("readme")
        || stem.starts_with("changelog");
    if dirs.iter().any(|d| doc_dir(d)) || doc_file {
        r |= Reasons::DOCUMENTATION_PATH;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: Reasons) -> Vec<&'static str> {
        r.names().collect()
    }

    #[test]
    fn value_doubts() {
        for (value, key, expect) in [
            (
                &b"supersecretpassword"[..],
                &b"password: "[..],
                vec!["dictionary-words"],
            ),
            (
                b"Password123!",
                b"pwd=",
                vec!["dictionary-words", "documentation-value"],
            ),
            (
                b"hunter2",
                b"pass ",
                vec!["dictionary-words", "documentation-value"],
            ),
            (b"%HTTPPORT#", b"http://user:", vec!["template-reference"]),
            (b"pw${SUFFIX}x", b"PASSWORD=", vec!["template-reference"]),
            (
                b"E%2B5zw2QKxjzdla2yXrdPb3nQcch%2BY9dc2u0i6add%3D",
                b"sig=",
                vec![],
            ),
            (b"x@DB_PASS@y", b"pass=", vec!["template-reference"]),
            (
                b"db_password",
                b"DB_PASSWORD=",
                vec!["dictionary-words", "key-name-as-value"],
            ),
            (
                b"MYSQL_ROOT_PASSWORD",
                b"password: ",
                vec!["dictionary-words", "key-name-as-value"],
            ),
            (b"aZ9q1234567x", b"token=", vec!["repetitive-value"]),
            (b"q8Zr2LmX0vT4kP9w", b"token=", vec![]),
            (
                b"sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                b"key=",
                vec!["documentation-value"],
            ),
            (b"N0tA-Pl4ceh0lder-9f2c", b"secret=", vec![]),
        ] {
            assert_eq!(
                names(value_reasons(value, key)),
                expect,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn test_code_is_found_before_the_line_or_on_it() {
        let rust = b"#[test]\nfn parses() {\n    let t = \"ghp_secret\";\n}\n";
        assert!(in_test_code(rust, 35));
        let same_line = b"x = 1\nassert_eq!(parse(\"tok_1\"), 1)\n";
        assert!(in_test_code(same_line, 6));
        let after = b"let t = \"tok\";\n#[test]\nfn later() {}\n";
        assert!(!in_test_code(after, 9));
        let submit = b"form.submit(\"tok\")\n";
        assert!(!in_test_code(submit, 13));
        let plain = b"const API_KEY = \"q8Zr2LmX0vT4kP9w\";\n";
        assert!(!in_test_code(plain, 17));
    }

    #[test]
    fn paths() {
        for (path, expect) in [
            ("tests/data.json", vec!["test-path"]),
            ("pkg/server_test.go", vec!["test-path"]),
            ("src/__tests__/api.spec.ts", vec!["test-path"]),
            ("src/test/java/FooTest.java", vec!["test-path"]),
            ("app.jar!fixtures/creds.properties", vec!["test-path"]),
            ("config.example.yml", vec!["test-path"]),
            ("docs/index.rst", vec!["documentation-path"]),
            ("README.md", vec!["documentation-path"]),
            ("docs/curl.1", vec!["documentation-path"]),
            (
                "examples/README.md",
                vec!["test-path", "documentation-path"],
            ),
            ("deploy/prod.env", vec![]),
            ("src/latest.rs", vec![]),
            ("contest/main.go", vec![]),
        ] {
            assert_eq!(names(path_reasons(path)), expect, "{path}");
        }
    }

    #[test]
    fn each_kind_of_doubt_lowers_once() {
        let high = Assessment {
            base: Confidence::High,
            reasons: Reasons::PROVIDER_PREFIX,
        };
        assert_eq!(high.level(), Confidence::High);
        let fixture = high.with(Reasons::TEST_PATH | Reasons::TEST_CODE);
        assert_eq!(fixture.level(), Confidence::Medium);
        let both = fixture.with(Reasons::DICTIONARY_WORDS);
        assert_eq!(both.level(), Confidence::Low);
        let generic = Assessment {
            base: Confidence::Medium,
            reasons: Reasons::KEYWORD_AND_VALUE,
        };
        assert_eq!(generic.with(Reasons::TEST_PATH).level(), Confidence::Low);
        assert_eq!(
            Reasons::parse("test-path").unwrap() | Reasons::parse("test-code").unwrap(),
            Reasons::TEST_PATH | Reasons::TEST_CODE
        );
    }
}
