//! Throughput of [`Masker`] on build-log text.
//!
//! `cargo run --release -p keyward-detectors --example mask_throughput [VALUES] [MIB] [CHUNK]`
//!
//! Builds a masker over VALUES (default 1000) random 32-byte printable values (each masked in
//! every form: raw, base64, base64url, percent- and JSON-encoded), generates MIB (default 256)
//! MiB of cargo/compiler-style log lines with a few values sprinkled in, and pushes it through a
//! stream in CHUNK-byte (default 65536) writes. Prints MB/s (10^6 bytes per second).

#![allow(clippy::print_stdout)] // a command-line benchmark: printing is its output

use keyward_detectors::Masker;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }
}

const ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.:\"\\&%";

const CRATES: &[&str] = &[
    "serde",
    "tokio",
    "hyper",
    "regex",
    "aho-corasick",
    "memchr",
    "rustls",
    "ring",
    "clap",
    "tracing",
    "futures-util",
    "bytes",
    "syn",
    "quote",
    "proc-macro2",
    "libc",
    "anyhow",
];

fn log_line(rng: &mut Rng, out: &mut Vec<u8>) {
    let c = CRATES[rng.below(CRATES.len())];
    let line = match rng.below(6) {
        0 => format!(
            "   Compiling {c} v{}.{}.{} (/home/ci/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/{c}-1.0.{})\n",
            rng.below(3),
            rng.below(40),
            rng.below(20),
            rng.below(99)
        ),
        1 => format!(
            "warning: unused variable: `x{}`\n  --> src/{c}/mod.rs:{}:{}\n   |\n{} |     let x{} = compute_{c}(input, &config)?;\n",
            rng.below(99),
            rng.below(900),
            rng.below(80),
            rng.below(900),
            rng.below(99)
        ),
        2 => format!("test tests::{c}::case_{} ... ok\n", rng.below(10_000)),
        3 => format!(
            "[{:02}:{:02}:{:02}] INFO  fetching https://registry.example.com/v2/{c}/blobs/sha256:{:016x}{:016x}\n",
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.next(),
            rng.next()
        ),
        4 => format!(
            "npm http fetch GET 200 https://registry.npmjs.org/{c} {}ms (cache revalidated)\n",
            rng.below(900)
        ),
        _ => format!(
            "    Finished `release` profile [optimized] target(s) in {}.{:02}s\n",
            rng.below(500),
            rng.below(100)
        ),
    };
    out.extend_from_slice(line.as_bytes());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_values: usize = args.next().map_or(1000, |a| a.parse().expect("VALUES"));
    let mib: usize = args.next().map_or(256, |a| a.parse().expect("MIB"));
    let chunk: usize = args.next().map_or(65536, |a| a.parse().expect("CHUNK"));

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values: Vec<Vec<u8>> = (0..n_values)
        .map(|_| {
            (0..32)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect()
        })
        .collect();
    let t = Instant::now();
    let masker = Masker::new(&values);
    println!("built {masker:?} in {:.2?}", t.elapsed());

    let size = mib << 20;
    let mut text = Vec::with_capacity(size + 4096);
    let mut lines = 0_u64;
    while text.len() < size {
        log_line(&mut rng, &mut text);
        lines += 1;
        if lines.is_multiple_of(10_000) {
            text.extend_from_slice(b"token=");
            text.extend_from_slice(&values[rng.below(values.len())]);
            text.push(b'\n');
        }
    }
    text.truncate(size);

    let mut out = Vec::with_capacity(chunk * 2);
    let mut written = 0_usize;
    let mut stream = masker.stream();
    let t = Instant::now();
    for c in text.chunks(chunk) {
        stream.push(c, &mut out);
        written += out.len();
        out.clear();
    }
    stream.finish(&mut out);
    written += out.len();
    let secs = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let mbps = size as f64 / secs / 1e6;
    println!(
        "{mib} MiB in {chunk}-byte chunks, {n_values} values: {secs:.3} s, {mbps:.0} MB/s ({written} bytes out)"
    );
}
