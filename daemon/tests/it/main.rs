//! End-to-end tests of the `keyward` binary.

/// Shared helpers: the binary, planted tokens, temp trees.
mod support;

/// `scan dir`: findings, locations, suppression, exit codes, bad input.
mod dir;
/// `scan git`: history walk, attribution, in_head, refs, ranges, state, damaged repositories.
mod git;
/// `hook pre-commit`, `pre-push`, `pre-receive`, `install`: real `git commit` and `git push`.
mod hooks;
/// `scan image`: images built by the Docker engine, read four ways (engine, `docker save`,
/// OCI layout, registry) and compared; whiteouts, corrupt layers, digest mismatches, indexes.
mod image;
/// Report formats: json, jsonl, text, SARIF (validated against the 2.1.0 schema).
mod reports;
/// `rules list`, `rules check`, `config example`, `config check`.
mod rules_cmd;
/// `keyward serve`: the daemon end to end (git, API, metrics, restarts, stores, tokens).
mod serve;
/// `keyward serve` from outside: promtool, alerts via Prometheus, openapi.json vs the live API.
mod serve_alerts;
/// `keyward serve` with image sources: the Docker engine, drop directories, registries.
mod serve_image;
/// `scan stdin`: streaming, chunk boundaries, `-`.
mod stdin;
/// The findings store: one set of test bodies run on SQLite and on a real PostgreSQL.
mod store;
/// Image watchers: Docker engine events (real and scripted engine), registry tag polling.
mod watch;
