//! Criterion benchmarks of the engine: throughput per core on real source code, and the cost of
//! compiling the rule pack.
//!
//! The corpus is the Rust and C sources under `~/.cargo/registry/src` (present on any machine
//! that has built this workspace), capped at 64 MB so a run takes seconds; override with
//! `KEYWARD_BENCH_CORPUS=DIR`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyward_detectors::{RuleSet, Scanner};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CAP: usize = 64 << 20;

fn corpus() -> Vec<u8> {
    let dir = std::env::var_os("KEYWARD_BENCH_CORPUS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo/registry/src"),
        PathBuf::from,
    );
    let mut out = Vec::with_capacity(CAP);
    walk(&dir, &mut out);
    assert!(!out.is_empty(), "no corpus under {}", dir.display());
    out
}

fn walk(dir: &Path, out: &mut Vec<u8>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::path);
    for e in entries {
        if out.len() >= CAP {
            return;
        }
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "rs" || x == "c" || x == "h")
            && let Ok(b) = std::fs::read(&p)
        {
            out.extend_from_slice(&b);
        }
    }
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let scanner = Scanner::new(Arc::new(RuleSet::builtin().expect("rules")));
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    // Scanned in 1 MiB pieces, as the directory walker hands over files and chunks.
    g.bench_function("scan_source_1core", |b| {
        b.iter(|| {
            data.chunks(1 << 20)
                .map(|c| scanner.scan(c).len())
                .sum::<usize>()
        });
    });
    g.finish();
    c.bench_function("compile_builtin_rules", |b| {
        b.iter(|| RuleSet::builtin().expect("rules"));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
