//! Lazy rule selection for the pre-commit hook: compiling the whole built-in pack costs about
//! 200 ms, far more than scanning a small commit, so only the rules whose keywords occur in the
//! added text (or in base64 decoded from it) are compiled.

use crate::config::Config;
use anyhow::Result;
use base64::Engine as _;
use serde::Deserialize;

/// Above this much added text, the keyword pre-check costs more than it saves: every rule is
/// compiled.
pub const PRECHECK_LIMIT: usize = 256 << 10;

/// Shortest base64 run the engine decodes (`detectors/src/encoded.rs`, `MIN_RUN`).
const MIN_BASE64_RUN: usize = 20;

/// Just what the pre-check needs of a rule file; every other field is ignored.
#[derive(Deserialize)]
struct KeywordFile {
    #[serde(default)]
    rule: Vec<KeywordRule>,
}

#[derive(Deserialize)]
struct KeywordRule {
    id: Option<String>,
    keywords: Option<Vec<String>>,
}

/// The rules that could match `text`: `None` means all of them (the text is too large for the
/// pre-check); an empty list means none can.
///
/// Rules come from the built-in pack and the config's rule files, minus disabled ones; a rule
/// without keywords is always selected. Keywords are compared ASCII-case-insensitively, as the
/// engine does.
///
/// # Errors
/// A rule file cannot be read or parsed.
pub fn candidates(config: &Config, text: &[u8]) -> Result<Option<Vec<String>>> {
    if text.len() > PRECHECK_LIMIT {
        return Ok(None);
    }
    let mut hay = text.to_ascii_lowercase();
    for decoded in decode_runs(text) {
        hay.push(b'\n');
        hay.extend(decoded.to_ascii_lowercase());
    }
    let mut sources: Vec<String> = keyward_detectors::RuleSet::builtin_files()
        .iter()
        .map(|(_, t)| (*t).to_owned())
        .collect();
    for f in &config.rule_files {
        sources.push(fs_err::read_to_string(f)?);
    }
    let mut ids = Vec::new();
    for text in &sources {
        // A file that does not parse is reported by the full build below.
        let Ok(file) = toml::from_str::<KeywordFile>(text) else {
            return Ok(None);
        };
        for r in file.rule {
            let Some(id) = r.id else { continue };
            if config.disabled_rules.contains(&id) || ids.contains(&id) {
                continue;
            }
            let hit = match &r.keywords {
                Some(k) if !k.is_empty() => k.iter().any(|k| {
                    let k = k.to_ascii_lowercase();
                    memchr::memmem::find(&hay, k.as_bytes()).is_some()
                }),
                _ => true,
            };
            if hit {
                ids.push(id);
            }
        }
    }
    Ok(Some(ids))
}

/// The decoded bytes of each base64 run of at least [`MIN_BASE64_RUN`] characters (standard
/// or URL-safe alphabet, padding optional), so a keyword inside encoded text selects its rule.
fn decode_runs(text: &[u8]) -> Vec<Vec<u8>> {
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    let config = base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let standard = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url = base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !is_b64(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_b64(text[i]) {
            i += 1;
        }
        if i - start < MIN_BASE64_RUN {
            continue;
        }
        // Drop the trailing characters that do not make a whole quantum.
        let run = &text[start..start + (i - start) / 4 * 4];
        if let Ok(d) = standard.decode(run).or_else(|_| url.decode(run)) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_keyword_case_insensitively() {
        let config = Config::default();
        let ids = candidates(&config, b"token = GHP_xxxxxxxx")
            .unwrap()
            .unwrap();
        assert!(ids.iter().any(|i| i == "github-pat-classic"), "{ids:?}");
        let none = candidates(&config, b"fn main() {}\n").unwrap().unwrap();
        assert!(!none.iter().any(|i| i == "github-pat-classic"), "{none:?}");
    }

    #[test]
    fn looks_inside_base64() {
        let config = Config::default();
        let enc = base64::engine::general_purpose::STANDARD.encode("x = ghp_aaaaaaaaaaaaaaaaaaaa");
        let ids = candidates(&config, enc.as_bytes()).unwrap().unwrap();
        assert!(ids.iter().any(|i| i == "github-pat-classic"), "{ids:?}");
    }
}
