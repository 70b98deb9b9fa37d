//! `kubectl-ds __complete WORDS...`, run by `kubectl_complete-ds` when kubectl completes
//! `kubectl ds <TAB>`: plans with [`crate::complete`], looks names up where needed, prints
//! Cobra's format. It never prints an error (kubectl passes our stderr to the terminal): a
//! failed lookup offers nothing.

use std::future::Future;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::Cli;
use crate::cluster::client::{connect, read_kubeconfig};
use crate::cluster::names;
use crate::complete::{self, Completions, Lookup, Plan, Request};
use crate::error::{Error, Result};
use crate::settings::Settings;

/// A shell must not hang on a dead apiserver: the per-request limit unless one was typed.
const DEFAULT_TIMEOUT: &str = "5s";

pub fn run(request: Request) -> ExitCode {
    let mut root = Cli::command();
    root.build();
    let completions = match complete::plan(&root, &request.words) {
        Plan::Done(c) => c,
        Plan::Lookup {
            what,
            prefix,
            global_args,
        } => match lookup(what, &global_args) {
            Ok(found) => Completions::from_names(found, &prefix),
            Err(_) => Completions::none(),
        },
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe is the shell's business; nothing useful to report.
    let _ = completions.write_to(&mut out, request.descriptions);
    ExitCode::SUCCESS
}

/// Settings from the global flags typed so far, parsed by the same definition as a command's.
fn settings(global_args: &[String]) -> Result<Settings> {
    let with_flags = ["kubectl-ds"]
        .into_iter()
        .chain(global_args.iter().map(String::as_str))
        .chain(["completion", "bash"]);
    let cli = Cli::try_parse_from(with_flags)
        .or_else(|_| Cli::try_parse_from(["kubectl-ds", "completion", "bash"]))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let mut global = cli.global;
    if global.request_timeout == "0" {
        global.request_timeout = DEFAULT_TIMEOUT.into();
    }
    Settings::resolve(&global)
}

fn lookup(what: Lookup, global_args: &[String]) -> Result<Vec<String>> {
    let settings = settings(global_args)?;
    match what {
        Lookup::Contexts => {
            let kc = read_kubeconfig(&settings)?;
            Ok(kc.contexts.into_iter().map(|c| c.name).collect())
        }
        Lookup::Clusters => {
            let kc = read_kubeconfig(&settings)?;
            Ok(kc.clusters.into_iter().map(|c| c.name).collect())
        }
        Lookup::Users => {
            let kc = read_kubeconfig(&settings)?;
            Ok(kc.auth_infos.into_iter().map(|u| u.name).collect())
        }
        Lookup::DaemonSets => {
            block_on(async { names::fetch_daemon_set_names(&connect(&settings).await?).await })
        }
        Lookup::Namespaces => {
            block_on(async { names::fetch_namespace_names(&connect(&settings).await?).await })
        }
        Lookup::Nodes => {
            block_on(async { names::fetch_node_names(&connect(&settings).await?).await })
        }
    }
}

/// One request, one thread: no worker pool to start for a keystroke.
fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("starting the async runtime: {e}")))?
        .block_on(work)
}
