//! `kubectl ds completion bash|zsh|fish`: shell completion scripts.

use clap::CommandFactory;
use clap_complete::Shell as CompleteShell;

use crate::cli::{Cli, CompletionArgs, Shell};
use crate::error::Result;
use crate::exit::Exit;

pub fn run(args: CompletionArgs) -> Result<Exit> {
    let shell = match args.shell {
        Shell::Bash => CompleteShell::Bash,
        Shell::Zsh => CompleteShell::Zsh,
        Shell::Fish => CompleteShell::Fish,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "kubectl-ds", &mut std::io::stdout());
    Ok(Exit::Ok)
}
