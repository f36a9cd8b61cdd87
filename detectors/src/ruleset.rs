//! [`RuleSet`]: every compiled rule plus the one keyword automaton over all of them.

use crate::gitleaks;
use crate::keywords::KeywordIndex;
use crate::rule::{self, RawRuleFile, Rule};
use crate::{Error, ErrorKind};
use std::collections::{BTreeMap, HashMap};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// A compiled, immutable set of rules. Build one with [`RuleSet::builder`]; share it with `Arc`.
///
/// Invariant: every rule has at least one keyword, and every keyword of every rule is in
/// `keywords`; `keyword_rules[k]` lists the rules that keyword `k` triggers.
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) keywords: KeywordIndex,
    pub(crate) keyword_rules: Vec<Vec<u32>>,
    warnings: Vec<Error>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RuleSet({} rules)", self.rules.len())
    }
}

/// Builds a [`RuleSet`] from the built-in pack and/or rule files.
#[derive(Debug, Default, Clone)]
pub struct RuleSetBuilder {
    builtin: bool,
    sources: Vec<(String, String)>,
    only: Option<Vec<String>>,
    disabled: Vec<String>,
}

impl RuleSet {
    /// A builder with the built-in rules enabled.
    pub fn builder() -> RuleSetBuilder {
        RuleSetBuilder {
            builtin: true,
            ..RuleSetBuilder::default()
        }
    }

    /// The built-in rule pack.
    ///
    /// # Example
    /// ```
    /// let rules = keyward_detectors::RuleSet::builtin().unwrap();
    /// assert!(rules.len() > 0);
    /// ```
    pub fn builtin() -> Result<RuleSet, Error> {
        RuleSet::builder().build()
    }

    /// The built-in rule files, `(file name, TOML text)`.
    pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
        BUILTIN_RULE_FILES
    }

    /// Every rule, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id.as_str() == id)
    }

    /// Non-fatal notes from loading, each naming file, line, rule and field: the parts of
    /// gitleaks rule files that could not be translated and are ignored (see "Rules from
    /// gitleaks" in `detectors/rules/README.md`). Empty for native rule files.
    pub fn warnings(&self) -> &[Error] {
        &self.warnings
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl RuleSetBuilder {
    /// Include (default) or leave out the built-in rule pack.
    #[must_use]
    pub fn builtin(mut self, yes: bool) -> Self {
        self.builtin = yes;
        self
    }

    /// Adds a rule file's TOML text; `name` is used in error messages.
    #[must_use]
    pub fn add_source(mut self, name: impl Into<String>, toml_text: impl Into<String>) -> Self {
        self.sources.push((name.into(), toml_text.into()));
        self
    }

    /// Keep only the rules with these ids (all others are not compiled at all).
    #[must_use]
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.only = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Leave out the rules with these ids.
    #[must_use]
    pub fn disable<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.disabled.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Parses and compiles every rule.
    ///
    /// # Errors
    /// Every invalid file and rule is reported (file, line, rule id and field), not only the
    /// first; duplicate ids and unknown ids in `only` are errors too. A rule in an added source
    /// with the id of a built-in rule replaces the built-in one.
    ///
    /// A source in gitleaks' format (a top-level `[[rules]]` array and no `[[rule]]`) is
    /// translated into keyward rules first; what cannot be translated is an error (detection
    /// parts) or a warning in [`RuleSet::warnings`] (allowlist parts).
    pub fn build(self) -> Result<RuleSet, Error> {
        let mut files: Vec<(String, &str)> = Vec::new();
        if self.builtin {
            files.extend(
                BUILTIN_RULE_FILES
                    .iter()
                    .map(|(n, t)| (format!("builtin:{n}"), *t)),
            );
        }
        files.extend(self.sources.iter().map(|(n, t)| (n.clone(), t.as_str())));

        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        let wanted = |id: &str| {
            self.only.as_ref().is_none_or(|o| o.iter().any(|w| w == id))
                && !self.disabled.iter().any(|d| d == id)
        };
        for (file, text) in &files {
            if !file.starts_with("builtin:") && gitleaks::is_gitleaks(text) {
                for t in gitleaks::translate(file, text, &mut errors, &mut warnings) {
                    if !wanted(&t.id) {
                        continue;
                    }
                    let line = t.line;
                    if let Some(rule) = t.compile(file, text, &mut errors, &mut warnings) {
                        admit(rule, file, line, &mut rules, &mut seen, &mut errors);
                    }
                }
                continue;
            }
            let parsed: RawRuleFile = match toml::from_str(text) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(Error::new(ErrorKind::Parse {
                        file: file.clone(),
                        line: e.span().map(|s| rule::line_of(text, s.start)),
                        message: e.message().to_owned(),
                    }));
                    continue;
                }
            };
            for raw in parsed.rule {
                if !wanted(raw.get_ref().id.as_deref().unwrap_or_default()) {
                    continue;
                }
                let line = rule::line_of(text, raw.span().start);
                if let Some(rule) = rule::compile(raw, file, text, &mut errors) {
                    admit(rule, file, line, &mut rules, &mut seen, &mut errors);
                }
            }
        }
        if let Some(only) = &self.only {
            for id in only.iter().filter(|id| !seen.contains_key(*id)) {
                errors.push(Error::new(ErrorKind::Rule {
                    file: "(rule selection)".into(),
                    line: 0,
                    rule: id.clone(),
                    field: "id",
                    message: "no rule has this id".into(),
                }));
            }
        }
        if let Some(e) = Error::collect(errors) {
            return Err(e);
        }
        Ok(index(rules, warnings))
    }
}

/// Adds a compiled rule unless its id is taken. A user file may redefine a built-in rule by id
/// (to tune or fix it); two definitions outside the built-in pack are an error.
fn admit(
    rule: Rule,
    file: &str,
    line: usize,
    rules: &mut Vec<Rule>,
    seen: &mut HashMap<String, String>,
    errors: &mut Vec<Error>,
) {
    let id = rule.id.as_str().to_owned();
    let previous = seen.insert(id.clone(), file.to_owned());
    if let Some(first) = &previous
        && first.starts_with("builtin:")
        && !file.starts_with("builtin:")
    {
        rules.retain(|r| r.id.as_str() != id);
    } else if let Some(first) = previous {
        errors.push(Error::new(ErrorKind::Rule {
            file: file.to_owned(),
            line,
            rule: id,
            field: "id",
            message: format!("duplicate id, first defined in {first}"),
        }));
        return;
    }
    rules.push(rule);
}

/// Builds the keyword index.
fn index(rules: Vec<Rule>, warnings: Vec<Error>) -> RuleSet {
    // Keywords are ASCII-case-insensitive: dedupe them by lowercase form.
    let mut by_keyword: BTreeMap<Vec<u8>, Vec<u32>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        for k in &r.keywords {
            let list = by_keyword
                .entry(k.as_bytes().to_ascii_lowercase())
                .or_default();
            if !list.contains(&(i as u32)) {
                list.push(i as u32);
            }
        }
    }
    let (patterns, keyword_rules): (Vec<Vec<u8>>, Vec<Vec<u32>>) = by_keyword.into_iter().unzip();
    let keywords = KeywordIndex::new(&patterns);
    RuleSet {
        rules,
        keywords,
        keyword_rules,
        warnings,
    }
}
