//! `keyward.toml`: rules, allowlists and scan options.
//!
//! Read in two stages: [`RawConfig`] (serde, unknown fields rejected) becomes [`Config`] with every
//! problem reported together, each naming the file, line and field.

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file a scanned root may carry.
pub const ROOT_CONFIG_NAME: &str = ".keyward.toml";

/// `keyward.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// Rule selection and extra rule files.
    #[serde(default)]
    pub rules: RawRules,
    /// What is never reported.
    #[serde(default)]
    pub allowlist: RawAllowlist,
    /// Scan options.
    #[serde(default)]
    pub scan: RawScan,
}

/// `[rules]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRules {
    /// Extra rule files (same format as the built-in pack), relative to the config file.
    #[serde(default)]
    pub files: Vec<String>,
    /// Rule ids to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Report matches whose validator failed instead of dropping them.
    #[serde(default)]
    pub keep_failed_validation: bool,
}

/// `[allowlist]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAllowlist {
    /// Regexes on the finding's path; a match suppresses every finding in that file.
    #[serde(default)]
    pub paths: Vec<toml::Spanned<String>>,
    /// Regexes on the secret itself.
    #[serde(default)]
    pub secrets: Vec<toml::Spanned<String>>,
}

/// `[scan]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScan {
    /// Largest file scanned, in bytes (default 512 MiB).
    pub max_file_size: Option<u64>,
    /// Decode base64 runs and scan the decoded bytes (default true).
    pub decode_base64: Option<bool>,
}

/// The typed configuration, merged from every config file that applies.
#[derive(Debug, Default)]
pub struct Config {
    /// Extra rule files, resolved to absolute paths.
    pub rule_files: Vec<PathBuf>,
    /// Rule ids turned off.
    pub disabled_rules: Vec<String>,
    /// Keep matches whose validator failed.
    pub keep_failed_validation: bool,
    /// Path allowlist.
    pub allow_paths: Vec<Regex>,
    /// Secret allowlist.
    pub allow_secrets: Vec<Regex>,
    /// Largest file scanned.
    pub max_file_size: Option<u64>,
    /// Decode base64.
    pub decode_base64: Option<bool>,
    /// The files this was read from.
    pub sources: Vec<PathBuf>,
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses TOML read from `path`; an error names the file, the line and what is wrong (an unknown
/// or missing key names the key).
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map_or(String::new(), |s| format!(":{}", line_of(text, s.start)));
        anyhow::anyhow!("{}{line}: {}", path.display(), e.message())
    })
}

impl Config {
    /// Reads and merges one config file into `self`.
    pub fn merge_file(&mut self, path: &Path) -> Result<()> {
        let text = fs_err::read_to_string(path)?;
        self.merge_str(path, &text)
    }

    /// Parses `text` (read from `path`) and merges it.
    pub fn merge_str(&mut self, path: &Path, text: &str) -> Result<()> {
        let raw: RawConfig = parse_toml(path, text)?;
        self.merge_raw(path, text, raw)
    }

    /// Merges an already parsed file (`text` is its contents, for line numbers).
    pub fn merge_raw(&mut self, path: &Path, text: &str, raw: RawConfig) -> Result<()> {
        let mut problems = Vec::new();
        let base = path.parent().unwrap_or(Path::new("."));
        for (field, list, out) in [
            (
                "allowlist.paths",
                &raw.allowlist.paths,
                &mut self.allow_paths,
            ),
            (
                "allowlist.secrets",
                &raw.allowlist.secrets,
                &mut self.allow_secrets,
            ),
        ] {
            for p in list {
                match Regex::new(p.get_ref()) {
                    Ok(re) => out.push(re),
                    Err(e) => problems.push(format!(
                        "{}:{}: field `{field}`: pattern {:?} does not compile: {e}",
                        path.display(),
                        line_of(text, p.span().start),
                        p.get_ref()
                    )),
                }
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        self.rule_files
            .extend(raw.rules.files.iter().map(|f| base.join(f)));
        self.disabled_rules.extend(raw.rules.disable);
        self.keep_failed_validation |= raw.rules.keep_failed_validation;
        self.max_file_size = raw.scan.max_file_size.or(self.max_file_size);
        self.decode_base64 = raw.scan.decode_base64.or(self.decode_base64);
        self.sources.push(path.to_owned());
        Ok(())
    }

    /// The explicit `--config` file, then `.keyward.toml` in each scanned root that has one.
    pub fn load(explicit: Option<&Path>, roots: &[PathBuf]) -> Result<Config> {
        let mut config = Config::default();
        if let Some(p) = explicit {
            config
                .merge_file(p)
                .with_context(|| format!("reading config {}", p.display()))?;
        }
        for root in roots {
            let candidate = if root.is_dir() {
                root.join(ROOT_CONFIG_NAME)
            } else {
                continue;
            };
            if candidate.is_file() {
                config.merge_file(&candidate)?;
            }
        }
        Ok(config)
    }
}

/// A documented example config, printed by `keyward config example`.
pub const EXAMPLE: &str = r#"# keyward.toml — every field is optional.
# A `.keyward.toml` at the root of a scanned directory is read too.

[rules]
# Extra rule files, in the same format as the built-in pack (see `keyward rules check`).
# Paths are relative to this file.
files = []
# Rule ids to turn off (see `keyward rules list`).
disable = []
# Report matches whose offline validator failed (checksum, PEM, JWT) instead of dropping them.
keep-failed-validation = false

[allowlist]
# Regexes on a finding's path: a match suppresses every finding in that file.
paths = ['(^|/)testdata/', '\.min\.js$']
# Regexes on the secret itself.
secrets = []

[scan]
# Largest file scanned, in bytes. Larger files are reported as skipped.
max-file-size = 536870912
# Decode base64 runs (Kubernetes Secret data, Docker auth) and scan what they hold.
decode-base64 = true
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses() {
        let mut c = Config::default();
        c.merge_str(Path::new("example.toml"), EXAMPLE).unwrap();
        assert_eq!(c.allow_paths.len(), 2);
        assert_eq!(c.max_file_size, Some(536_870_912));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let mut c = Config::default();
        let e = c
            .merge_str(
                Path::new("k.toml"),
                "[allowlist]\npaths = [\n  'ok',\n  '(unclosed',\n]\n",
            )
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("k.toml:4: field `allowlist.paths`"),
            "{msg}"
        );
        let e = c
            .merge_str(Path::new("k.toml"), "[scan]\nmax-file-sise = 3\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.toml:2: unknown field `max-file-sise`"),
            "{e}"
        );
    }
}
