//! Subcommands and the CLI definition.

pub mod admin;
pub mod audit;
pub mod run;
pub mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// keyward-agent: short-lived Vault credentials for builds, always revoked.
#[derive(Debug, Parser)]
#[command(name = "keyward-agent", version, about)]
pub struct Cli {
    /// More log output (repeat for more). `KEYWARD_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less log output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker.
    Serve {
        /// Config file.
        #[arg(long, default_value = "/etc/keyward/agent.toml")]
        config: PathBuf,
    },
    /// Validate a config file and exit (binds nothing).
    CheckConfig {
        /// Config file.
        #[arg(long, default_value = "/etc/keyward/agent.toml")]
        config: PathBuf,
    },
    /// Run COMMAND with credentials from a session that ends when it exits.
    Run(run::RunArgs),
    /// Show sessions, leases and expiries (never values).
    Status {
        /// Agent socket.
        #[arg(long, env = "KEYWARD_AGENT_SOCKET", default_value = crate::env_vars::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a session (or all) and revoke its credentials now.
    Revoke {
        /// Session id.
        #[arg(required_unless_present = "all")]
        session: Option<String>,
        /// Every session.
        #[arg(long, conflicts_with = "session")]
        all: bool,
        /// Agent socket.
        #[arg(long, env = "KEYWARD_AGENT_SOCKET", default_value = crate::env_vars::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Audit log tools.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log.
    Verify {
        /// The audit log.
        file: PathBuf,
    },
}

/// Exit codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Verification failed (audit chain broken).
    pub const FINDING: u8 = 1;
    /// Runtime error.
    pub const ERROR: u8 = 2;
    /// Bad usage or config (`EX_USAGE`).
    pub const USAGE: u8 = 64;
}
