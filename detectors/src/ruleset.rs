//! [`RuleSet`]: every compiled rule plus the one keyword automaton over all of them.

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
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (file, text) in &files {
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
                let id = raw.get_ref().id.clone().unwrap_or_default();
                let wanted = self.only.as_ref().is_none_or(|o| o.contains(&id))
                    && !self.disabled.contains(&id);
                if !wanted {
                    continue;
                }
                let line = rule::line_of(text, raw.span().start);
                if let Some(rule) = rule::compile(raw, file, text, &mut errors) {
                    let previous = seen.insert(id.clone(), file.clone());
                    // A user file may redefine a built-in rule by id (to tune or fix it); two
                    // definitions outside the built-in pack are an error.
                    if let Some(first) = &previous
                        && first.starts_with("builtin:")
                        && !file.starts_with("builtin:")
                    {
                        rules.retain(|r| r.id.as_str() != id);
                    } else if let Some(first) = previous {
                        errors.push(Error::new(ErrorKind::Rule {
                            file: file.clone(),
                            line,
                            rule: id,
                            field: "id",
                            message: format!("duplicate id, first defined in {first}"),
                        }));
                        continue;
                    }
                    rules.push(rule);
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
        Ok(index(rules))
    }
}

/// Builds the keyword index.
fn index(rules: Vec<Rule>) -> RuleSet {
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
    }
}
