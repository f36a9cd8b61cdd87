//! How noisy the built-in pack is on a body of (presumed clean) source: the number of findings
//! per rule id.
//!
//! `cargo run --release -p keyward-detectors --example count_findings -- DIR [--show PREFIX]
//! [--rules RULE_DIR]`
//!
//! Walks DIR (no symlinks followed), skipping files over 4 MiB and files with a NUL byte in their
//! first 8 KiB, scans each with the default scanner (all rules, base64 decoding on) and prints
//! `count  rule-id` lines, most frequent first. With `--show PREFIX`, also prints each finding
//! of the rules whose id starts with PREFIX, with the line it is on, to see what a rule fires on.
//! With `--rules RULE_DIR`, the pack is read from RULE_DIR's `*.toml` files at run time instead
//! of the compiled-in one (edit a rule, re-run, no rebuild), and every rule's `examples` and
//! `negatives` are checked first, as `tests/it/rules.rs` does.

#![allow(clippy::print_stdout)] // a measuring tool prints its results

use keyward_detectors::{RuleSet, Scanner};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const MAX_FILE: u64 = 4 << 20;
const SNIFF: usize = 8 << 10;

struct Tally {
    scanner: Scanner,
    show: Option<String>,
    counts: BTreeMap<String, usize>,
    files: usize,
    bytes: u64,
}

impl Tally {
    fn walk(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::path);
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                self.walk(&path);
            } else if ft.is_file() {
                self.file(&path);
            }
        }
    }

    fn file(&mut self, path: &Path) {
        if std::fs::metadata(path).map_or(true, |m| m.len() > MAX_FILE) {
            return;
        }
        let Ok(data) = std::fs::read(path) else {
            return;
        };
        if memchr_nul(&data[..data.len().min(SNIFF)]) {
            return;
        }
        self.files += 1;
        self.bytes += data.len() as u64;
        for m in self.scanner.scan(&data) {
            let id = m.rule.as_str();
            *self.counts.entry(id.to_owned()).or_default() += 1;
            if self.show.as_deref().is_some_and(|p| id.starts_with(p)) {
                let start = data[..m.span.start]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = data[m.span.start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(data.len(), |i| m.span.start + i);
                let line = String::from_utf8_lossy(&data[start..end]);
                let line: String = line.trim().chars().take(200).collect();
                println!("{id}\t{}:{}\t{line}", path.display(), m.line);
            }
        }
    }
}

fn memchr_nul(b: &[u8]) -> bool {
    b.contains(&0)
}

const USAGE: &str = "usage: count_findings DIR [--show PREFIX] [--rules RULE_DIR]";

/// The rule files in `dir`, read at run time.
fn rules_from(dir: &Path) -> RuleSet {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("rule dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut b = RuleSet::builder().builtin(false);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("rule file");
        b = b.add_source(f.display().to_string(), text);
    }
    b.build().unwrap_or_else(|e| panic!("{e}"))
}

/// Checks every rule's examples and negatives through `scanner`; prints failures.
fn check_examples(scanner: &Scanner) {
    let mut failures = 0;
    for rule in scanner.rules().rules() {
        let id = rule.id().as_str();
        for (i, ex) in rule.examples().iter().enumerate() {
            let found = scanner.scan(ex.as_bytes());
            if !found.iter().any(|m| m.rule.as_str() == id) {
                let others: Vec<_> = found.iter().map(|m| m.rule.as_str()).collect();
                println!("FAIL {id}: example #{i} did not match (other rules: {others:?})");
                failures += 1;
            }
        }
        for (i, neg) in rule.negatives().iter().enumerate() {
            if scanner
                .scan(neg.as_bytes())
                .iter()
                .any(|m| m.rule.as_str() == id)
            {
                println!("FAIL {id}: negative #{i} matched");
                failures += 1;
            }
        }
    }
    println!(
        "# {} rules, {failures} example failures",
        scanner.rules().len()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect(USAGE);
    let (mut show, mut rule_dir) = (None, None);
    while let Some(flag) = args.next() {
        let value = args.next().expect(USAGE);
        match flag.as_str() {
            "--show" => show = Some(value),
            "--rules" => rule_dir = Some(value),
            _ => panic!("{USAGE}"),
        }
    }
    let scanner = match rule_dir {
        Some(d) => {
            let s = Scanner::new(Arc::new(rules_from(Path::new(&d))));
            check_examples(&s);
            s
        }
        None => Scanner::new(Arc::new(RuleSet::builtin().expect("rules"))),
    };
    let mut t = Tally {
        scanner,
        show,
        counts: BTreeMap::new(),
        files: 0,
        bytes: 0,
    };
    t.walk(Path::new(&dir));
    let mut counts: Vec<_> = t.counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!(
        "# {} files, {:.1} MB, {} findings",
        t.files,
        t.bytes as f64 / 1e6,
        counts.iter().map(|c| c.1).sum::<usize>()
    );
    for (id, n) in counts {
        println!("{n:6}  {id}");
    }
}
