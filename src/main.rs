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

/// mimalloc's memory options (`mi_option_set`, in the mimalloc library the allocator links):
/// arenas committed on demand rather than eagerly, and freed memory given back to the OS at
/// once rather than after a delay. Measured on 1,000 and 2,000-node clusters, `explain -o json`
/// peaked at about a third less RSS with both, at no more CPU. The same options as environment
/// variables (`MIMALLOC_ARENA_EAGER_COMMIT`, `MIMALLOC_PURGE_DELAY`) take precedence, so the
/// defaults can still be measured.
///
/// They must be set before the first allocation reserves mimalloc's first arena, which happens
/// before `main` (the runtime's own allocations): on Linux this runs as a constructor right
/// after mimalloc's own (priority 101, `prim.c` mi_process_attach), as std places its argv
/// capture (`.init_array.00099`); elsewhere it runs first thing in `main`.
extern "C" fn tune_allocator() {
    // C's getenv, not std::env: nothing may allocate before the options are set.
    for (option, env) in [
        (ARENA_EAGER_COMMIT, c"MIMALLOC_ARENA_EAGER_COMMIT"),
        (PURGE_DELAY, PURGE_DELAY_VAR),
    ] {
        // SAFETY: getenv reads the environment with a NUL-terminated name (nothing else runs
        // yet); mi_option_set stores one entry of mimalloc's option table, with an option index
        // mimalloc defines and a value it documents (0: off / at once).
        unsafe {
            if getenv(env.as_ptr()).is_null() {
                mi_option_set(option, 0);
            }
        }
    }
}

// Indices in mimalloc v3's `mi_option_t` (include/mimalloc.h).
const ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
const PURGE_DELAY: std::ffi::c_int = 15;
const PURGE_DELAY_VAR: &std::ffi::CStr = c"MIMALLOC_PURGE_DELAY";

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
}

/// From here on, memory freed is kept for a second before it goes back to the OS (mimalloc's
/// purge delay, read each time it purges), for a command that makes and frees a large tree
/// over and over: the overview's JSON, a verdict tree per DaemonSet, gave each tree's pages
/// back and faulted them in again for the next (at 100 DaemonSets and 5,000 nodes, a third
/// of its time in the kernel). `MIMALLOC_PURGE_DELAY` still takes precedence.
pub fn hold_freed_memory() {
    let var = PURGE_DELAY_VAR.to_str().unwrap_or_default();
    if std::env::var_os(var).is_none() {
        // SAFETY: mi_option_set stores one entry of mimalloc's option table (a documented
        // option, a delay in milliseconds); it is called before the overview starts the
        // thread that makes its trees.
        unsafe { mi_option_set(PURGE_DELAY, 1000) }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array.00102"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

fn main() -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    tune_allocator();
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
    let runtime = if cli.command.reads_once() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
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
