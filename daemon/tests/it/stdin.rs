use crate::support::{gh_token, keyward, stderr};
use std::io::Write;
use std::process::Stdio;

fn scan_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = keyward()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

fn jsonl(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn build_log_on_stdin_with_label_and_dash_alias() {
    let tok = gh_token(70);
    let log = format!(
        "step 1/3\nstep 2/3\n+ curl -H 'Authorization: token {tok}' https://api.github.com\n"
    );
    let out = scan_stdin(
        &["scan", "stdin", "-f", "jsonl", "--label", "build-42.log"],
        log.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let f = jsonl(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["location"]["source"], "stdin");
    assert_eq!(f[0]["location"]["path"], "build-42.log");
    assert_eq!(f[0]["location"]["line"], 3);
    assert_eq!(f[0]["location"]["column"], 33);
    let dash = scan_stdin(&["scan", "-", "-f", "jsonl"], log.as_bytes());
    assert_eq!(jsonl(&dash).len(), 1);
}

/// Secrets right at and around the 1 MiB chunk boundaries are each reported once, with
/// absolute lines; memory stays flat (chunks are scanned as they arrive).
#[test]
fn secrets_across_chunk_boundaries_are_reported_once_with_absolute_lines() {
    let mut input = Vec::new();
    let mut expected = Vec::new();
    let mut line = 1u64;
    let mut seed = 100;
    while input.len() < 5 << 20 {
        // 100-byte lines; every ~1 MiB put a token so that it straddles the boundary.
        let next_boundary = (input.len() / (1 << 20) + 1) << 20;
        if next_boundary - input.len() < 100 && next_boundary - input.len() > 20 {
            let tok = gh_token(seed);
            seed += 1;
            let pad = next_boundary - input.len() - 20;
            let l = format!("{} {tok}\n", "x".repeat(pad - 1));
            expected.push((line, pad as u64 + 1));
            input.extend_from_slice(l.as_bytes());
        } else {
            input.extend_from_slice(format!("{line:099}\n").as_bytes());
        }
        line += 1;
    }
    let out = scan_stdin(&["scan", "stdin", "-f", "jsonl"], &input);
    let got: Vec<_> = jsonl(&out)
        .iter()
        .map(|f| {
            (
                f["location"]["line"].as_u64().unwrap(),
                f["location"]["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(got, expected);
}
