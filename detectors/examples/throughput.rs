//! Engine throughput over a body of files, with N threads: the numbers behind
//! `scripts/bench-engine`.
//!
//! `cargo run --release -p keyward-detectors --example throughput -- DIR [THREADS...]`
//!
//! Loads every regular file under DIR (up to 2 GiB) into memory first, so only the engine is
//! timed, then scans the whole set once per thread count, files handed out from a shared index.

#![allow(clippy::print_stdout)] // a benchmark prints its results

use keyward_detectors::{RuleSet, Scanner};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn collect(dir: &Path, out: &mut Vec<Vec<u8>>, total: &mut usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect(&e.path(), out, total);
        } else if ft.is_file()
            && *total < (2 << 30)
            && let Ok(b) = std::fs::read(e.path())
        {
            *total += b.len();
            out.push(b);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: throughput DIR [THREADS...]");
    let threads: Vec<usize> = args.map(|a| a.parse().expect("thread count")).collect();
    let threads = if threads.is_empty() {
        vec![1, 2]
    } else {
        threads
    };
    let mut files = Vec::new();
    let mut total = 0;
    collect(Path::new(&dir), &mut files, &mut total);
    let t = Instant::now();
    let rules = Arc::new(RuleSet::builtin().expect("rules"));
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    // KEYWARD_BENCH_NO_DECODE=1 measures the keyword pass alone, without base64 decoding.
    let decode = std::env::var_os("KEYWARD_BENCH_NO_DECODE").is_none();
    let scanner = Scanner::builder(rules.clone())
        .decode_base64(decode)
        .build();
    println!(
        "corpus: {} files, {:.1} MB; {} rules compiled in {compile_ms:.1} ms",
        files.len(),
        total as f64 / 1e6,
        rules.len()
    );
    let files = Arc::new(files);
    for n in threads {
        let next = Arc::new(AtomicUsize::new(0));
        let found = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..n {
                let (files, next, found, scanner) =
                    (files.clone(), next.clone(), found.clone(), scanner.clone());
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        found.fetch_add(scanner.scan(f).len(), Ordering::Relaxed);
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        println!(
            "threads={n}: {:.2} s, {:.0} MB/s, {} matches",
            secs,
            total as f64 / 1e6 / secs,
            found.load(Ordering::Relaxed)
        );
    }
}
