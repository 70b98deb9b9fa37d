//! The exit codes of kubectl-ds: a small documented enum (README, "Exit codes").

use std::process::ExitCode;

/// Every exit code kubectl-ds can return. The numbers are a contract: scripts rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success. For `rollout-preview --exit-code`: nothing would roll.
    Ok = 0,
    /// `rollout-preview --exit-code`: something would roll (as `kubectl diff`).
    Differs = 1,
    /// Bad command line, bad input file or manifest.
    Usage = 2,
    /// Kubeconfig missing, context unknown, apiserver unreachable or too slow.
    Connection = 3,
    /// The object asked for does not exist.
    NotFound = 4,
    /// The apiserver refused (RBAC denial, admission rejection, conflict on a precondition).
    Forbidden = 5,
    /// A safety check blocked a mutating command, or the user declined: nothing changed.
    Refused = 6,
    /// A mutation ran but the end state could not be verified.
    Unverified = 7,
    /// `migrate` finished, but the old DaemonSet reappeared (its owner of record recreated
    /// it): two DaemonSets now select the same pods' nodes.
    Recreated = 8,
    /// `explain --exit-code`: a node lacks the available current pod it should run, or runs
    /// one it should not (a state other than Running or NotEligible).
    Problems = 9,
    /// Any other failure (I/O, unexpected server response).
    Internal = 10,
    /// `status --timeout`: the rollout was not done in time.
    Timeout = 11,
    /// `status --fail-on-stuck`: no progress for `--stuck-after`.
    Stuck = 12,
    /// Interrupted by Ctrl-C (`status`), as a shell reports SIGINT (128 + 2).
    Interrupted = 130,
    /// Standard output was closed by its reader (`| head`): no message, 128 + SIGPIPE, the
    /// status a shell reports for kubectl, which dies of SIGPIPE.
    OutputClosed = 141,
    /// Test-only: a `KUBECTL_DS_FAILPOINT` stopped the process on purpose (debug builds only).
    #[cfg_attr(not(any(debug_assertions, feature = "failpoints")), allow(dead_code))]
    Failpoint = 99,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code with its number (the contract).
    const ALL: [(Exit, u8); 16] = [
        (Exit::Ok, 0),
        (Exit::Differs, 1),
        (Exit::Usage, 2),
        (Exit::Connection, 3),
        (Exit::NotFound, 4),
        (Exit::Forbidden, 5),
        (Exit::Refused, 6),
        (Exit::Unverified, 7),
        (Exit::Recreated, 8),
        (Exit::Problems, 9),
        (Exit::Internal, 10),
        (Exit::Timeout, 11),
        (Exit::Stuck, 12),
        (Exit::Interrupted, 130),
        (Exit::Failpoint, 99),
        (Exit::OutputClosed, 141),
    ];

    #[test]
    fn codes_are_stable() {
        for (e, n) in ALL {
            assert_eq!(e as u8, n, "{e:?}");
        }
    }

    #[test]
    fn the_readme_documents_every_code() {
        let readme = include_str!("../README.md");
        let table = &readme[readme.find("## Exit codes").expect("an Exit codes section")..];
        for (e, code) in ALL {
            let documented = match e {
                // Test-only: documented with the failpoints, not in the table.
                Exit::Failpoint => readme.contains(&format!("with code {code}")),
                _ => table.contains(&format!("\n| {code} | ")),
            };
            assert!(documented, "README does not document exit {code} ({e:?})");
        }
    }
}
