//! Rule files in gitleaks' format (v8 `.gitleaks.toml`), translated into keyward rules.
//!
//! [`crate::RuleSetBuilder::build`] sends a source here when its TOML has a top-level `rules`
//! array and no `rule` array. Each `[[rules]]` table becomes a [`RawRule`] and is compiled by
//! [`rule::compile`] with the same checks as a native rule. What keyward's engine cannot express
//! is reported with file and line: detection parts (`path`, `[extend]`, composite rules) as
//! errors, allowlist parts (paths, commits, other regex targets, AND conditions) as warnings.
//! `detectors/rules/README.md` ("Rules from gitleaks") is the user-facing reference.

use crate::rule::{self, RawRule, Rule, line_of};
use crate::{Error, ErrorKind};
use regex_syntax::ast::{self, Ast, ClassPerl, ClassPerlKind, ClassSetItem, GroupKind};
use serde::Deserialize;
use std::collections::HashMap;
use toml::Spanned;

/// A gitleaks config file. Keys are spelled as gitleaks documents them (camelCase); gitleaks
/// reads keys case-insensitively, so the all-lowercase spellings are accepted too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlFile {
    #[serde(default)]
    #[allow(dead_code)]
    title: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    extend: Option<Spanned<GlExtend>>,
    /// Legacy single global allowlist.
    #[serde(alias = "allowList")]
    allowlist: Option<Spanned<GlAllowlist>>,
    #[serde(default)]
    allowlists: Vec<Spanned<GlAllowlist>>,
    rules: Vec<Spanned<GlRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GlExtend {
    #[serde(default, alias = "usedefault")]
    use_default: bool,
    #[serde(default)]
    path: String,
    #[serde(default)]
    url: String,
    #[serde(default, alias = "disabledrules")]
    #[allow(dead_code)]
    disabled_rules: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GlRule {
    id: Option<String>,
    #[serde(default)]
    description: String,
    regex: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    #[serde(alias = "secretgroup")]
    secret_group: Option<Spanned<i64>>,
    entropy: Option<Spanned<f64>>,
    keywords: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    tags: Vec<String>,
    /// Legacy single rule allowlist.
    #[serde(alias = "allowList")]
    allowlist: Option<Spanned<GlAllowlist>>,
    #[serde(default)]
    allowlists: Vec<Spanned<GlAllowlist>>,
    required: Option<Spanned<toml::Value>>,
    #[serde(default, alias = "skipreport")]
    skip_report: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GlAllowlist {
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default, alias = "regextarget")]
    regex_target: String,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default, alias = "stopWords")]
    stopwords: Vec<String>,
    /// Global allowlists only: the rules (gitleaks ids) it applies to; empty = every rule.
    #[serde(default, alias = "targetrules")]
    target_rules: Vec<String>,
}

/// Whether `text` is a gitleaks config: a top-level `rules` array and no `rule` array.
pub(crate) fn is_gitleaks(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        rule: Option<serde::de::IgnoredAny>,
        rules: Option<Vec<serde::de::IgnoredAny>>,
    }
    toml::from_str::<Probe>(text).is_ok_and(|p| p.rule.is_none() && p.rules.is_some())
}

/// One gitleaks rule, translated but not yet compiled.
pub(crate) struct Translated {
    /// The keyward id (what `only` and `disable` select by).
    pub(crate) id: String,
    /// Line of the `[[rules]]` table.
    pub(crate) line: usize,
    /// `None` when the rule cannot be translated at all (a path-only rule).
    raw: Option<Spanned<RawRule>>,
    /// gitleaks' `secretGroup = 0` with capture groups: first non-empty group, else the match.
    first_nonempty_group: bool,
    /// No keywords given and none derivable: replaces compile's "keywords missing".
    keywords_underivable: bool,
    errors: Vec<Error>,
    warnings: Vec<Error>,
}

impl Translated {
    /// Compiles the rule as a native one; `None` if it or its translation had any error.
    pub(crate) fn compile(
        self,
        file: &str,
        text: &str,
        errors: &mut Vec<Error>,
        warnings: &mut Vec<Error>,
    ) -> Option<Rule> {
        let untranslatable = !self.errors.is_empty();
        errors.extend(self.errors);
        warnings.extend(self.warnings);
        let mut compile_errors = Vec::new();
        let mut compiled = rule::compile(self.raw?, file, text, &mut compile_errors);
        let regex_failed = compile_errors.iter().any(|e| field_of(e) == Some("regex"));
        for e in compile_errors {
            let keywords = field_of(&e) == Some("keywords");
            match e.kind() {
                // The keywords could not be derived because the regex is wrong: that is the error.
                _ if keywords && self.keywords_underivable && regex_failed => {}
                ErrorKind::Rule {
                    file, line, rule, ..
                } if keywords && self.keywords_underivable => {
                    errors.push(rule_error(
                        file,
                        *line,
                        rule,
                        "keywords",
                        "no keywords and none can be derived from the regex; add keywords = [...]"
                            .into(),
                    ));
                }
                _ => errors.push(e),
            }
        }
        if let Some(r) = &mut compiled {
            r.first_nonempty_group = self.first_nonempty_group;
        }
        compiled.filter(|_| !untranslatable)
    }
}

fn field_of(e: &Error) -> Option<&'static str> {
    match e.kind() {
        ErrorKind::Rule { field, .. } => Some(field),
        _ => None,
    }
}

fn rule_error(file: &str, line: usize, rule: &str, field: &'static str, message: String) -> Error {
    Error::new(ErrorKind::Rule {
        file: file.to_owned(),
        line,
        rule: rule.to_owned(),
        field,
        message,
    })
}

/// Translates a gitleaks config. Problems of the whole file go to `errors` and `warnings`;
/// each rule carries its own (reported only if the rule is selected).
pub(crate) fn translate(
    file: &str,
    text: &str,
    errors: &mut Vec<Error>,
    warnings: &mut Vec<Error>,
) -> Vec<Translated> {
    let parsed: GlFile = match toml::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            errors.push(Error::new(ErrorKind::Parse {
                file: file.to_owned(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: e.message().to_owned(),
            }));
            return Vec::new();
        }
    };
    let at = |s: std::ops::Range<usize>| line_of(text, s.start);
    if let Some(ext) = &parsed.extend {
        let e = ext.get_ref();
        let what = if e.use_default {
            Some(
                "`useDefault = true` (gitleaks' default rules are not part of keyward; its own \
                 built-in pack plays that part)"
                    .to_owned(),
            )
        } else if !e.path.is_empty() || !e.url.is_empty() {
            Some(format!(
                "`{}` (load that file as another rule file instead)",
                if e.path.is_empty() { &e.url } else { &e.path }
            ))
        } else {
            None
        };
        if let Some(what) = what {
            errors.push(rule_error(
                file,
                at(ext.span()),
                "",
                "extend",
                format!("[extend] {what} cannot be translated; remove [extend]"),
            ));
        }
    }

    // Global allowlists: untargeted ones apply to every rule of this file, targeted ones to
    // their rules. Their untranslatable parts are reported once, here.
    if parsed.allowlist.is_some() && !parsed.allowlists.is_empty() {
        errors.push(rule_error(
            file,
            at(parsed.allowlist.as_ref().map_or(0..0, Spanned::span)),
            "",
            "allowlist",
            "[allowlist] is deprecated and cannot be used alongside [[allowlists]]".into(),
        ));
    }
    let gitleaks_ids: Vec<&str> = parsed
        .rules
        .iter()
        .filter_map(|r| r.get_ref().id.as_deref())
        .collect();
    let mut global_allow: Vec<String> = Vec::new();
    let mut targeted_allow: HashMap<String, Vec<String>> = HashMap::new();
    for al in parsed.allowlist.iter().chain(&parsed.allowlists) {
        let patterns = allowlist(file, text, "", al, errors, warnings);
        let targets = &al.get_ref().target_rules;
        for t in targets {
            if !gitleaks_ids.contains(&t.as_str()) {
                errors.push(rule_error(
                    file,
                    at(al.span()),
                    "",
                    "allowlists.targetRules",
                    format!("target rule id `{t}` does not exist"),
                ));
            }
            targeted_allow
                .entry(t.clone())
                .or_default()
                .extend(patterns.iter().cloned());
        }
        if targets.is_empty() {
            global_allow.extend(patterns);
        }
    }

    parsed
        .rules
        .into_iter()
        .map(|r| {
            let extra = r
                .get_ref()
                .id
                .as_ref()
                .and_then(|id| targeted_allow.get(id))
                .map_or(&[][..], Vec::as_slice);
            let allow: Vec<String> = global_allow.iter().chain(extra).cloned().collect();
            translate_rule(file, text, r, allow)
        })
        .collect()
}

/// gitleaks ids may use any characters; keyward's are `[a-z0-9-]+`.
fn keyward_id(id: &str) -> String {
    id.trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect()
}

fn translate_rule(
    file: &str,
    text: &str,
    gl: Spanned<GlRule>,
    inherited_allow: Vec<String>,
) -> Translated {
    let span = gl.span();
    let line = line_of(text, span.start);
    let gl = gl.into_inner();
    let gitleaks_id = gl.id.as_deref().map(str::trim).unwrap_or_default();
    let id = keyward_id(gitleaks_id);
    let mut t = Translated {
        id: id.clone(),
        line,
        raw: None,
        first_nonempty_group: false,
        keywords_underivable: false,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let error =
        |at: usize, field: &'static str, message: String| rule_error(file, at, &id, field, message);
    if !gitleaks_id.is_empty() && id != gitleaks_id {
        t.warnings.push(error(
            line,
            "id",
            format!("gitleaks id `{gitleaks_id}` is `{id}` in keyward (reports, fingerprints, --disable)"),
        ));
    }
    if let Some(req) = &gl.required {
        t.errors.push(error(
            line_of(text, req.span().start),
            "required",
            "composite rules ([[rules.required]]) cannot be translated".into(),
        ));
    }
    if gl.skip_report {
        t.warnings.push(error(
            line,
            "skipReport",
            "the rule only serves composite rules, which keyward does not support; not loaded"
                .into(),
        ));
        return t;
    }
    if let Some(path) = &gl.path {
        let message = if gl.regex.is_none() {
            "path-only rule cannot be translated: keyward matches file content, not file names"
        } else {
            "cannot be translated: keyward matches content without file paths; remove `path` to \
             scan every file, or remove the rule"
        };
        t.errors.push(error(
            line_of(text, path.span().start),
            "path",
            message.into(),
        ));
    }
    let Some(regex) = gl.regex else {
        if gl.path.is_none() {
            t.errors
                .push(error(line, "regex", "missing (and no `path`)".into()));
        }
        return t;
    };
    let regex_span = regex.span();

    // The regex: Go RE2 semantics for Perl classes, and the secret group named `secret`.
    let secret_group = gl.secret_group.as_ref().map_or(0, |g| *g.get_ref());
    let group_line = gl
        .secret_group
        .as_ref()
        .map_or(line, |g| line_of(text, g.span().start));
    let pattern = match u32::try_from(secret_group) {
        Err(_) => {
            t.errors.push(error(
                group_line,
                "secretGroup",
                format!("{secret_group} is not a capture group number"),
            ));
            regex.get_ref().clone()
        }
        Ok(group) => match rewrite(regex.get_ref(), group) {
            // Leave a pattern the parser refuses as it is: compile reports the error.
            Err(()) => regex.get_ref().clone(),
            Ok(r) if group > r.captures => {
                t.errors.push(error(
                    group_line,
                    "secretGroup",
                    format!(
                        "invalid secret group {group}: the regex has {} capture groups",
                        r.captures
                    ),
                ));
                r.pattern
            }
            Ok(r) => {
                t.first_nonempty_group = group == 0 && r.captures > 0;
                r.pattern
            }
        },
    };

    let keywords = match gl.keywords {
        Some(k) if !k.get_ref().is_empty() => {
            let kspan = k.span();
            let words: Vec<String> = k.into_inner().iter().map(|w| w.to_lowercase()).collect();
            if let Some(w) = words.iter().find(|w| w.len() == 3) {
                t.warnings.push(error(
                    line_of(text, kspan.start),
                    "keywords",
                    format!(
                        "3-byte keyword {w:?} triggers only when a letter, digit or one of \
                         _-.~+/= follows it (keyward treats 3-byte keywords as token prefixes)"
                    ),
                ));
            }
            Some(Spanned::new(kspan, words))
        }
        _ => {
            let derived = derive_keywords(&pattern);
            t.keywords_underivable = derived.is_none();
            derived.map(|d| Spanned::new(regex_span.clone(), d))
        }
    };

    // gitleaks drops a secret whose entropy is <= `entropy`; keyward drops it when < min.
    let min_entropy = gl.entropy.filter(|e| *e.get_ref() != 0.0).map(|e| {
        let v = *e.get_ref();
        let strict = if (0.0..8.0).contains(&v) {
            v.next_up()
        } else {
            v
        };
        Spanned::new(e.span(), strict)
    });

    let mut allow = Vec::new();
    if gl.allowlist.is_some() && !gl.allowlists.is_empty() {
        t.errors.push(error(
            line,
            "allowlist",
            "[rules.allowlist] is deprecated and cannot be used alongside [[rules.allowlists]]"
                .into(),
        ));
    }
    for al in gl.allowlist.iter().chain(&gl.allowlists) {
        allow.extend(allowlist(
            file,
            text,
            &id,
            al,
            &mut t.errors,
            &mut t.warnings,
        ));
    }
    allow.extend(inherited_allow);

    let tags = if gl.tags.is_empty() {
        String::new()
    } else {
        format!(" (gitleaks tags: {})", gl.tags.join(", "))
    };
    let description = format!("{}{tags}", gl.description).trim().to_owned();
    let name = if gl.description.trim().is_empty() {
        gitleaks_id.to_owned()
    } else {
        gl.description
    };
    t.raw = Some(Spanned::new(
        span.clone(),
        RawRule {
            id: gl.id.map(|_| id.clone()),
            name: Some(name),
            description,
            severity: Some(Spanned::new(span.clone(), "medium".to_owned())),
            keywords,
            regex: Some(Spanned::new(regex_span, pattern)),
            min_entropy,
            validator: None,
            window: None,
            allow: (!allow.is_empty()).then(|| Spanned::new(span, allow)),
            skip_placeholder_filter: false,
            confidence: None,
            examples: Vec::new(),
            negatives: Vec::new(),
        },
    ));
    t
}

/// Translates one allowlist into allow patterns (on the secret); reports what it cannot.
fn allowlist(
    file: &str,
    text: &str,
    rule: &str,
    al: &Spanned<GlAllowlist>,
    errors: &mut Vec<Error>,
    warnings: &mut Vec<Error>,
) -> Vec<String> {
    let line = line_of(text, al.span().start);
    let a = al.get_ref();
    let note = |field: &'static str, message: String| rule_error(file, line, rule, field, message);
    let and = match a.condition.to_uppercase().as_str() {
        "" | "OR" | "||" => false,
        "AND" | "&&" => true,
        other => {
            errors.push(note(
                "allowlists.condition",
                format!("unknown condition `{other}` (expected AND or OR)"),
            ));
            return Vec::new();
        }
    };
    let on_secret = match a.regex_target.as_str() {
        "" | "secret" => true,
        "match" | "line" => false,
        other => {
            errors.push(note(
                "allowlists.regexTarget",
                format!("unknown regexTarget `{other}` (expected secret, match or line)"),
            ));
            return Vec::new();
        }
    };
    let checks = [
        ("commits", !a.commits.is_empty()),
        ("paths", !a.paths.is_empty()),
        ("regexes", !a.regexes.is_empty()),
        ("stopwords", !a.stopwords.is_empty()),
    ];
    let present: Vec<&str> = checks.iter().filter(|c| c.1).map(|c| c.0).collect();
    if present.is_empty() {
        errors.push(note(
            "allowlists",
            "must contain at least one of commits, paths, regexes, stopwords".into(),
        ));
        return Vec::new();
    }
    // keyward's allow patterns see only the secret: regexes on the secret and stopwords.
    let regexes = || {
        a.regexes
            .iter()
            .map(|r| rewrite(r, 0).map_or_else(|()| r.clone(), |w| w.inner))
    };
    let stopwords = || {
        a.stopwords
            .iter()
            .map(|w| format!("(?i){}", regex_syntax::escape(&w.to_lowercase())))
    };
    if and {
        if present == ["regexes"] && on_secret {
            return regexes().collect();
        }
        if present == ["stopwords"] {
            return stopwords().collect();
        }
        warnings.push(note(
            "allowlists.condition",
            format!(
                "condition = AND over {} cannot be translated; this allowlist is ignored, so \
                 findings it would suppress are reported",
                present.join(", ")
            ),
        ));
        return Vec::new();
    }
    let mut out: Vec<String> = stopwords().collect();
    if on_secret {
        out.extend(regexes());
    } else if !a.regexes.is_empty() {
        warnings.push(note(
            "allowlists.regexTarget",
            format!(
                "regexTarget = \"{}\" cannot be translated (keyward's allow patterns see only the \
                 secret); these regexes are ignored",
                a.regex_target
            ),
        ));
    }
    for (field, what, set) in [
        ("allowlists.paths", "paths", &a.paths),
        ("allowlists.commits", "commits", &a.commits),
    ] {
        if !set.is_empty() {
            warnings.push(note(
                field,
                format!(
                    "{what} cannot be translated (keyward matches content without paths or \
                     commits); they are ignored, so findings there are reported"
                ),
            ));
        }
    }
    out
}

/// A gitleaks (Go RE2) pattern rewritten for the `regex` crate.
struct Rewritten {
    /// With the secret group named `secret` (the whole pattern wrapped, if it has no groups).
    pattern: String,
    /// Only the class and boundary rewrites, no `secret` group (for allowlist regexes).
    inner: String,
    /// Number of capture groups.
    captures: u32,
}

/// Rewrites `pattern`: Go's `\d \w \s \b` are ASCII-only, the regex crate's are Unicode, so
/// they become explicit ASCII forms (which also compile far faster); capture group `group`
/// becomes `(?P<secret>…)`, or, if `group` is 0, group 1 — or the whole pattern when it has no
/// groups. `Err` when the pattern does not parse (compiling it then reports why).
fn rewrite(pattern: &str, group: u32) -> Result<Rewritten, ()> {
    struct Edits {
        group: u32,
        captures: u32,
        classes: Vec<(std::ops::Range<usize>, &'static str)>,
        secret: Option<(std::ops::Range<usize>, &'static str)>,
    }
    impl Edits {
        fn perl(&mut self, c: &ClassPerl) {
            let with = match (&c.kind, c.negated) {
                (ClassPerlKind::Digit, false) => "[0-9]",
                (ClassPerlKind::Digit, true) => "[^0-9]",
                (ClassPerlKind::Word, false) => "[0-9A-Za-z_]",
                (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
                (ClassPerlKind::Space, false) => r"[\t\n\x0C\r\x20]",
                (ClassPerlKind::Space, true) => r"[^\t\n\x0C\r\x20]",
            };
            self.classes
                .push((c.span.start.offset..c.span.end.offset, with));
        }
    }
    impl ast::Visitor for &mut Edits {
        type Output = ();
        type Err = ();
        fn finish(self) -> Result<(), ()> {
            Ok(())
        }
        fn visit_pre(&mut self, a: &Ast) -> Result<(), ()> {
            match a {
                Ast::ClassPerl(c) => self.perl(c),
                Ast::Assertion(x) => {
                    let range = x.span.start.offset..x.span.end.offset;
                    match x.kind {
                        ast::AssertionKind::WordBoundary => {
                            self.classes.push((range, r"(?-u:\b)"));
                        }
                        ast::AssertionKind::NotWordBoundary => {
                            self.classes.push((range, r"(?-u:\B)"));
                        }
                        _ => {}
                    }
                }
                Ast::Group(g) => {
                    let (index, name) = match &g.kind {
                        GroupKind::CaptureIndex(i) => (*i, None),
                        GroupKind::CaptureName { name, .. } => (name.index, Some(name)),
                        GroupKind::NonCapturing(_) => return Ok(()),
                    };
                    self.captures += 1;
                    let target = if self.group == 0 { 1 } else { self.group };
                    if index == target {
                        self.secret = Some(match name {
                            None => (g.span.start.offset..g.span.start.offset + 1, "(?P<secret>"),
                            Some(n) => (n.span.start.offset..n.span.end.offset, "secret"),
                        });
                    }
                }
                _ => {}
            }
            Ok(())
        }
        fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), ()> {
            if let ClassSetItem::Perl(c) = item {
                // Inside brackets the replacement is a nested class: `[\w.-]` → `[[0-9A-Za-z_].-]`.
                self.perl(c);
            }
            Ok(())
        }
    }
    fn apply(pattern: &str, edits: &mut [(std::ops::Range<usize>, &str)]) -> String {
        edits.sort_by_key(|e| std::cmp::Reverse(e.0.start));
        let mut out = pattern.to_owned();
        for (range, with) in edits.iter() {
            out.replace_range(range.clone(), with);
        }
        out
    }

    let parsed = ast::parse::Parser::new().parse(pattern).map_err(|_| ())?;
    let mut edits = Edits {
        group,
        captures: 0,
        classes: Vec::new(),
        secret: None,
    };
    ast::visit(&parsed, &mut edits)?;
    let inner = apply(pattern, &mut edits.classes.clone());
    let pattern = match edits.secret {
        Some(s) => {
            let mut all = edits.classes;
            all.push(s);
            apply(pattern, &mut all)
        }
        None => format!("(?P<secret>{inner})"),
    };
    Ok(Rewritten {
        pattern,
        inner,
        captures: edits.captures,
    })
}

/// Keywords for a rule that has none: the regex's prefix literals, lowercased, if every match
/// starts with one at least 3 bytes long. They are part of every match, so always near it.
fn derive_keywords(pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let seq = regex_syntax::hir::literal::Extractor::new().extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().len() < 3) {
        return None;
    }
    let mut words: Vec<String> = literals
        .iter()
        .map(|l| String::from_utf8(l.as_bytes().to_ascii_lowercase()).ok())
        .collect::<Option<_>>()?;
    words.sort();
    words.dedup();
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_names_the_secret_group_and_makes_classes_ascii() {
        let r = rewrite(r"\b(ghp_)([\w]{4})\s", 2).unwrap();
        assert_eq!(
            r.pattern,
            r"(?-u:\b)(ghp_)(?P<secret>[[0-9A-Za-z_]]{4})[\t\n\x0C\r\x20]"
        );
        assert_eq!(r.captures, 2);
        let r = rewrite(r"(?P<tok>x\d)", 0).unwrap();
        assert_eq!(r.pattern, r"(?P<secret>x[0-9])");
        let r = rewrite(r"abc\D", 0).unwrap();
        assert_eq!(r.pattern, r"(?P<secret>abc[^0-9])");
        assert_eq!(r.captures, 0);
        assert!(rewrite(r"(unclosed", 0).is_err());
    }

    #[test]
    fn keywords_are_derived_from_prefix_literals() {
        // `(?i)` folds `k` to the Kelvin sign too, as Go's does: those variants are kept.
        let words = derive_keywords(r"(?i)(?P<secret>(?:tok|KEY)_[a-z]{8})").unwrap();
        let ascii: Vec<_> = words.iter().filter(|w| w.is_ascii()).collect();
        assert_eq!(ascii, ["key_", "tok_"]);
        assert_eq!(derive_keywords(r"(?P<secret>[a-z]{8})"), None);
        assert_eq!(
            derive_keywords(r"(?P<secret>(?:ab|xyz)c)"),
            Some(vec!["abc".into(), "xyzc".into()])
        );
        assert_eq!(derive_keywords(r"(?P<secret>a[0-9a-f]{30})"), None);
    }

    #[test]
    fn ids_are_mapped_to_keyward_syntax() {
        assert_eq!(keyward_id("My_Rule.v2"), "my-rule-v2");
    }
}
