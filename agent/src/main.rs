//! The `keyward-agent` binary: init tracing, parse, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser as _;
use keyward_agent::cmd::{AuditCommand, Cli, Command, admin, audit, exit, run, serve};
use keyward_agent::config::{Config, ConfigError};
use keyward_agent::env_vars::{KEYWARD_LOG, SystemEnv};

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(KEYWARD_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn runtime(multi: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if multi {
        // NOTE: two workers: the agent is I/O-bound and shares small build hosts.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        // `run` must stay on one thread: PR_SET_PDEATHSIG fires when the *thread* that forked
        // the command exits, so the command is spawned from the main thread.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
}

fn load(path: &std::path::Path) -> Result<Config, u8> {
    Config::load(path).map_err(|e| {
        tracing::error!("{}: {e}", path.display());
        // An unreadable file is an operational error; a bad one is bad usage.
        if matches!(e, ConfigError::Read(_)) {
            exit::ERROR
        } else {
            exit::USAGE
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Serve { config } => match load(&config) {
            Ok(cfg) => runtime(true)
                .map_err(Into::into)
                .and_then(|rt| rt.block_on(serve::serve(cfg, &SystemEnv))),
            Err(code) => return ExitCode::from(code),
        },
        Command::CheckConfig { config } => match load(&config) {
            Ok(cfg) => {
                tracing::info!(profiles = cfg.profiles.len(), "Config is valid.");
                Ok(exit::OK)
            }
            Err(code) => return ExitCode::from(code),
        },
        Command::Run(args) => runtime(false)
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(run::run(args, &SystemEnv))),
        Command::Status { socket, json } => runtime(false)
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(admin::status(&socket, json))),
        Command::Revoke {
            session,
            all,
            socket,
        } => runtime(false)
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(admin::revoke(&socket, session.as_deref(), all))),
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => audit::verify(&file),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
