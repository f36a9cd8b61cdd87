//! The one error type of this crate.

use std::fmt;

/// An error from loading or compiling rules.
///
/// Loading reports every bad rule it finds, not only the first: see [`ErrorKind::Many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A rule file is not valid TOML, or does not have the rule-file shape.
    Parse {
        /// The file's name as given to the loader.
        file: String,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// One field of one rule is invalid.
    Rule {
        /// The file's name as given to the loader.
        file: String,
        /// 1-based line where the rule (or the field) starts.
        line: usize,
        /// The rule's id (empty when the id itself is missing, or the problem is not in a rule).
        rule: String,
        /// The field at fault, as spelled in TOML.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Several errors, in file order.
    Many(Vec<Error>),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Every single error inside this one (itself, or each of [`ErrorKind::Many`]).
    pub fn errors(&self) -> Vec<&Error> {
        match &self.kind {
            ErrorKind::Many(v) => v.iter().flat_map(Error::errors).collect(),
            _ => vec![self],
        }
    }

    /// Combines a list of errors: `None` if empty, the error itself if one, `Many` otherwise.
    pub(crate) fn collect(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::new(ErrorKind::Many(errors))),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Parse {
                file,
                line: Some(line),
                message,
            } => {
                write!(f, "{file}:{line}: invalid rule file: {message}")
            }
            ErrorKind::Parse {
                file,
                line: None,
                message,
            } => {
                write!(f, "{file}: invalid rule file: {message}")
            }
            // File-level problems (e.g. a gitleaks `[extend]`) have no rule.
            ErrorKind::Rule {
                file,
                line,
                rule,
                field,
                message,
            } if rule.is_empty() => write!(f, "{file}:{line}: field `{field}`: {message}"),
            ErrorKind::Rule {
                file,
                line,
                rule,
                field,
                message,
            } => {
                write!(
                    f,
                    "{file}:{line}: rule `{rule}`: field `{field}`: {message}"
                )
            }
            ErrorKind::Many(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}
