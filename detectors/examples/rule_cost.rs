//! Which rules cost the most: scans a corpus once per rule, alone, and prints the slowest.
//!
//! `cargo run --release -p keyward-detectors --example rule_cost -- DIR [MB]`

#![allow(clippy::print_stdout)] // a benchmark prints its results

use keyward_detectors::{RuleSet, Scanner};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn collect(dir: &Path, out: &mut Vec<u8>, cap: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if out.len() >= cap {
            return;
        }
        let p = e.path();
        if p.is_dir() {
            collect(&p, out, cap);
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend_from_slice(&b);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: rule_cost DIR [MB]");
    let mb: usize = args.next().map_or(64, |s| s.parse().expect("MB"));
    let mut data = Vec::new();
    collect(Path::new(&dir), &mut data, mb << 20);
    let all = RuleSet::builtin().expect("rules");
    let base = {
        let s = Scanner::builder(Arc::new(
            RuleSet::builder()
                .only(["github-pat-classic"])
                .build()
                .unwrap(),
        ))
        .decode_base64(false)
        .build();
        let t = Instant::now();
        for c in data.chunks(1 << 20) {
            s.scan(c);
        }
        t.elapsed().as_secs_f64()
    };
    // Leave-one-out: the cost of a rule is how much faster the full pack runs without it, which
    // counts its keyword hits, its windows and its regex work, all in the real automaton.
    let time = |s: &Scanner| {
        let t = Instant::now();
        let mut n = 0;
        for c in data.chunks(1 << 20) {
            n += s.scan(c).len();
        }
        (t.elapsed().as_secs_f64(), n)
    };
    let full = Scanner::builder(Arc::new(RuleSet::builtin().unwrap()))
        .decode_base64(false)
        .build();
    let (full_t, _) = time(&full);
    let mut costs = Vec::new();
    for r in all.rules() {
        let id = r.id().as_str();
        let rs = RuleSet::builder().disable([id]).build().unwrap();
        let s = Scanner::builder(Arc::new(rs)).decode_base64(false).build();
        let (t, _) = time(&s);
        let (_, n) = time(
            &Scanner::builder(Arc::new(RuleSet::builder().only([id]).build().unwrap()))
                .decode_base64(false)
                .build(),
        );
        costs.push((full_t - t, id.to_owned(), r.keywords().join(","), n));
    }
    println!("full pack: {full_t:.3}s");
    costs.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "corpus {:.1} MB; baseline (one cheap rule) {:.3}s",
        data.len() as f64 / 1e6,
        base
    );
    for (t, id, k, n) in costs.iter().take(25) {
        println!("{t:8.3}s  {id:40} {n:5} matches  keywords: {k}");
    }
}
