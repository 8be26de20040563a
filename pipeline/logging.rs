//! Log setup shared by every command: human-readable lines on standard error, so that standard
//! output stays clean for candidate events.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `LASTSEEN_LOG` (an `EnvFilter` directive such as
/// `lastseen=debug`) wins over the verbosity counted from `-v` and `-q`.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("LASTSEEN_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("lastseen={level},warn")));

    // A second init (tests call commands in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
