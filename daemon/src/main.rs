//! The `keyward` binary: parse flags, set up logging, run a command, map the result to an exit
//! status (0 clean, 1 findings, 2 error, 64 bad usage or config).

use clap::Parser;
use keyward::cli::{Cli, Command, ConfigCommand, RulesCommand, ScanCommand};
use keyward::cmd::{self, EXIT_ERROR, EXIT_USAGE, UsageError};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    // Before any thread exists: libgit2's settings are process-wide.
    keyward::sources::git::init_libgit2();
    init_tracing(cli.verbose, cli.quiet);
    let result = match &cli.command {
        Command::Scan(ScanCommand::Dir(a)) => cmd::scan::dir(a, cli.quiet),
        Command::Scan(ScanCommand::Stdin(a)) => cmd::scan::stdin(a, cli.quiet),
        Command::Scan(ScanCommand::Git(a)) => cmd::git::git(a, cli.quiet),
        Command::Scan(ScanCommand::Image(a)) => cmd::image::image(a, cli.quiet),
        Command::Rules(RulesCommand::List { rule_files, json }) => {
            cmd::rules::list(rule_files, *json)
        }
        Command::Rules(RulesCommand::Check { files }) => cmd::rules::check(files),
        Command::Config(ConfigCommand::Example) => cmd::config::example(),
        Command::Config(ConfigCommand::Check { file }) => cmd::config::check(file),
        Command::Hook(c) => cmd::hook::hook(c),
        Command::Serve(a) => cmd::serve::serve(a),
        Command::Findings(c) => cmd::findings::findings(c),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("keyward: {e:#}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("keyward: error: {e:#}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}

/// `KEYWARD_LOG` (an env-filter directive) overrides `-v`/`-q`; output goes to stderr.
fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
