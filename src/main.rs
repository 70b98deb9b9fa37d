//! kubectl-ds: a kubectl plugin that explains DaemonSets node by node, previews their rollouts
//! and replaces them (orphan, adopt, migrate) without restarting their pods.
//!
//! `main` only parses the command line, resolves settings once, runs the command and maps the
//! outcome to an exit code. Everything else lives in the modules below.

mod cli;
mod cluster;
mod commands;
mod complete;
mod engine;
mod error;
mod exit;
mod filename;
mod render;
mod settings;
mod workflows;
mod yaml;

#[cfg(test)]
mod readers_fuzz;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: parsing 5,000 nodes and pods is millions of small
/// allocations, where glibc's allocator spent a third of explain's CPU (perf) and musl's, in the
/// static release build, is slower still.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if let Some(request) = complete::request_from(std::env::args_os()) {
        return commands::complete::run(request);
    }
    let cli = match cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr.
            let code = if err.use_stderr() {
                exit::Exit::Usage
            } else {
                exit::Exit::Ok
            };
            let _ = err.print();
            return code.into();
        }
    };
    let settings = match settings::Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(err) => return report(&err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            return report(&error::Error::Io(format!(
                "starting the async runtime: {err}"
            )))
        }
    };
    match runtime.block_on(commands::run(cli.command, &settings)) {
        Ok(code) => code.into(),
        Err(err) => report(&err),
    }
}

/// Prints an error as one line on stderr, kubectl style, and returns its exit code.
fn report(err: &error::Error) -> ExitCode {
    if matches!(err, error::Error::OutputClosed) {
        // As kubectl piped into `head`: no message once the reader has gone.
        return err.exit_code().into();
    }
    // Names and messages in errors come from the cluster: escaped as in table output.
    eprintln!("error: {}", render::term::escape(&err.to_string()));
    if let Some(hint) = err.hint() {
        eprintln!("hint: {}", render::term::escape(hint));
    }
    err.exit_code().into()
}
