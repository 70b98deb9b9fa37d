//! Mutating workflows (orphan, adopt, migrate): fetch -> checks -> plan -> confirm -> mutate ->
//! verify. Shared here: how a run acts (plan only, server dry run, for real), the confirmation,
//! the test-only failpoints, the output sink and the polling loop the verifications use.

pub mod adopt;
pub mod backup;
pub mod executor;
pub mod lock;
pub mod migrate;
pub mod orphan;
/// The documents live in the engine; re-exported for the workflows' `super::report` paths.
pub use crate::engine::report;

use std::future::Future;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{DryRun, MutationFlags, Output};
use crate::cluster::client::Cluster;
use crate::engine::checks::{blocks, Check};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::palette::Palette;
use crate::settings::{parse_duration, Settings};

/// How often the verifications poll the apiserver.
const POLL: Duration = Duration::from_millis(500);

/// What a run is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--dry-run` / `--dry-run=client`: print the plan, send nothing that mutates.
    Plan,
    /// `--dry-run=server`: send every mutation with dryRun=All.
    ServerDryRun,
    /// Act (after `--yes` or a confirmation).
    Act,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "client",
            Mode::ServerDryRun => "server",
            Mode::Act => "none",
        }
    }
}

/// Everything a workflow needs, resolved once by the command.
pub struct Ctx<'a> {
    pub cluster: Cluster,
    pub settings: &'a Settings,
    pub mode: Mode,
    pub yes: bool,
    pub timeout: Duration,
    pub output: Output,
    pub palette: Palette,
    /// The DaemonSet's lease, held while a run acts (see [`lock`]).
    held: std::sync::Mutex<Option<lock::RunLock>>,
    /// Set once the report document was printed (`-o json/yaml`): a failure path prints it
    /// only if nothing did yet.
    document_written: std::cell::Cell<bool>,
}

/// Checks the flags before anything else happens (bad input is reported first).
pub fn check_flags(flags: &MutationFlags) -> Result<Duration> {
    if flags.output == Output::Wide {
        return Err(Error::Usage(
            "-o wide is not supported here: use -o table, json or yaml".into(),
        ));
    }
    parse_duration(&flags.timeout).map_err(|e| Error::Usage(format!("invalid --timeout: {e}")))
}

impl<'a> Ctx<'a> {
    pub fn new(cluster: Cluster, settings: &'a Settings, flags: &MutationFlags) -> Result<Ctx<'a>> {
        let timeout = check_flags(flags)?;
        let mode = match flags.dry_run {
            DryRun::Client => Mode::Plan,
            DryRun::Server => Mode::ServerDryRun,
            DryRun::None => Mode::Act,
        };
        Ok(Ctx {
            cluster,
            settings,
            mode,
            yes: flags.yes,
            timeout,
            output: flags.output,
            palette: Palette::new(settings.color),
            held: std::sync::Mutex::new(None),
            document_written: std::cell::Cell::new(false),
        })
    }

    pub fn ns(&self) -> &str {
        &self.cluster.namespace
    }

    fn is_table(&self) -> bool {
        self.output == Output::Table
    }

    /// Prints a plan or a result table (table output only; JSON prints one document at the end).
    pub fn table(&self, f: impl FnOnce(&mut dyn Write, &Palette) -> Result<()>) -> Result<()> {
        if !self.is_table() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        f(&mut out, &self.palette)?;
        out.flush().map_err(crate::render::io_err)
    }

    /// Prints the report as one JSON (or YAML) document (no-op for table output).
    pub fn document<T: Serialize>(&self, report: &T) -> Result<()> {
        self.document_written.set(true);
        let mut out = std::io::stdout().lock();
        match self.output {
            Output::Json => crate::render::json(&mut out, report),
            Output::Yaml => crate::render::yaml(&mut out, report),
            Output::Table | Output::Wide => Ok(()),
        }
    }

    /// Ends a `--dry-run=server` run: the apiserver's answers as a table, then the report as a
    /// document; nothing was changed.
    pub fn server_dry_run_done<T: Serialize>(
        &self,
        answers: &[report::ServerDryRun],
        report: &T,
    ) -> Result<Exit> {
        self.table(|out, p| crate::render::workflow::server_dry_run(out, answers, p))?;
        self.document(report)?;
        Ok(Exit::Ok)
    }

    /// Takes the lease of `daemon_set` for the rest of the run when acting (plans and server dry
    /// runs change nothing and take no lock); refuses when another run holds it.
    pub async fn lock(&self, daemon_set: &str) -> Result<()> {
        if self.mode != Mode::Act {
            return Ok(());
        }
        let l = lock::acquire(self, daemon_set).await?;
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
        Ok(())
    }

    /// Refuses to go on when the lease was lost to another run (checked before each mutation).
    pub fn ensure_locked(&self) -> Result<()> {
        let guard = self.held.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map_or(Ok(()), |l| l.ensure_held())
    }

    /// Releases the lease, if held.
    pub async fn unlock(&self) {
        let l = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(l) = l {
            l.release().await;
        }
    }

    /// A failure after the delete (something is already changed): the error says what state
    /// the cluster is in, where the backup is and the exact command that resumes, and `-o
    /// json`/`yaml` still gets its document (`report`, the last known one) if none was printed.
    pub fn after_delete<T: Serialize>(
        &self,
        err: Error,
        state: &str,
        backup: &Path,
        report: &T,
    ) -> Error {
        if !self.document_written.get() {
            let _ = self.document(report);
        }
        if matches!(err, Error::OutputClosed) {
            return err;
        }
        err.note(&format!(
            "{state}; the backup is {}; to resume, run: {}",
            backup.display(),
            self.settings.command_line
        ))
    }

    /// A progress line on stderr (stdout stays the plan, the result or the JSON document).
    pub fn progress(&self, text: &str) {
        eprintln!("{}", crate::render::term::escape(text));
    }

    /// Asks before mutating: `--yes`, else "Proceed? [y/N]" on a terminal, else refuse.
    pub fn confirm(&self, what: &str) -> Result<()> {
        if self.yes {
            return Ok(());
        }
        if !self.settings.interactive {
            return Err(Error::Refused(format!(
                "not confirmed, nothing was changed: pass --yes to {what} (there is no terminal to ask on)"
            )));
        }
        eprint!("{} {what}. Proceed? [y/N] ", self.palette.warn("About to"));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Error::Io(format!("reading the answer: {e}")))?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(Error::Refused(
                "declined at the prompt; nothing was changed".into(),
            ))
        }
    }

    /// Release builds: failpoints do not exist (nothing reads KUBECTL_DS_FAILPOINT).
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    pub async fn failpoint(&self, _step: &str) {}

    /// Test-only (debug builds, as `cargo test` makes, or `--features failpoints`): stops the
    /// process right after `step` when KUBECTL_DS_FAILPOINT names it (`STEP`), hangs there
    /// (`STEP:hang`) or sleeps there and goes on (`STEP:sleep=MS`).
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    pub async fn failpoint(&self, step: &str) {
        let Some(fp) = self.settings.failpoint.as_deref() else {
            return;
        };
        let (name, mode) = fp.split_once(':').unwrap_or((fp, ""));
        if name != step {
            return;
        }
        if let Some(ms) = mode.strip_prefix("sleep=") {
            // A window for a test's concurrent actor (a reconciler recreating the DaemonSet)
            // that does not depend on how loaded the machine is.
            let ms = ms.parse().unwrap_or(0);
            eprintln!("kubectl-ds: failpoint {step}: sleeping {ms} ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return;
        }
        let hang = mode == "hang";
        let _ = std::io::stdout().flush();
        if hang {
            eprintln!("kubectl-ds: failpoint {step}: hanging until killed");
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        eprintln!("kubectl-ds: failpoint {step}: exiting abruptly");
        std::process::exit(Exit::Failpoint as i32);
    }
}

/// Refuses when a check still blocks, naming each block and the flag that overrides it.
pub fn refuse_if_blocked(checks: &[Check]) -> Result<()> {
    let blocking = blocks(checks);
    if blocking.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = blocking.iter().map(|c| c.refusal()).collect();
    Err(Error::Refused(format!(
        "refused by {} pre-flight check(s), nothing was changed: {}",
        blocking.len(),
        text.join("; ")
    )))
}

/// What one poll saw: done (with the final state) or not yet (with the state so far).
pub enum Poll<T> {
    Done(T),
    Pending(T),
}

/// A state a wait polls for, in a few words ("3 of 5000 pods still owned"): a change of these
/// words is progress.
pub trait WaitState {
    fn summary(&self) -> String;
}

/// How often a long wait says where it stands (on stderr), when that changed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A wait that keeps making progress goes on up to this many times `--timeout` in all.
const PROGRESS_LIMIT: u32 = 10;

/// Polls `probe` until it reports done, or until `--timeout` passes without progress (a
/// change of the state's [`WaitState::summary`]), or [`PROGRESS_LIMIT`] times `--timeout` in
/// all: the garbage collector and the DaemonSet controller patch pods one by one at their
/// client's rate (kube-controller-manager's --kube-api-qps, 20 by default), so 5,000 pods take
/// minutes, and a wait that sees them move keeps waiting. Every [`PROGRESS_EVERY`] the state
/// is printed on stderr if it changed. Connection errors are retried until the timeout (the
/// apiserver may be briefly unreachable; 429/503/504 are retried below, by the client); other
/// errors end the wait. Returns the last state and whether it was done.
pub async fn poll_until<T, F, Fut>(ctx: &Ctx<'_>, probe: F) -> Result<(T, bool)>
where
    T: WaitState,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let mut seen: Option<String> = None;
    let mut shown = String::new();
    let mut shown_at = tokio::time::Instant::now();
    let progressed = |t: &T| {
        let now = tokio::time::Instant::now();
        let summary = t.summary();
        if now.duration_since(shown_at) >= PROGRESS_EVERY && summary != shown {
            ctx.progress(&format!("waiting: {summary}"));
            shown.clone_from(&summary);
            shown_at = now;
        }
        let moved = seen.as_ref().is_some_and(|s| *s != summary);
        seen = Some(summary);
        moved
    };
    let limit = ctx.timeout.saturating_mul(PROGRESS_LIMIT);
    poll_loop(ctx.timeout, limit, progressed, probe).await
}

/// Polls `probe` for a fixed `window` (no progress rule): for watches that look for something
/// happening, such as the old DaemonSet reappearing after a migrate.
pub async fn poll_for<T, F, Fut>(window: Duration, probe: F) -> Result<(T, bool)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    poll_loop(window, window, |_: &T| false, probe).await
}

/// The loop under both: polls until done, or until `window` passes without `progressed`
/// saying the state moved, or `limit` in all. Connection errors are retried until then; other
/// errors end the wait. A window past the clock's range (a --timeout of centuries) is never
/// reached. Returns the last state and whether it was done.
async fn poll_loop<T, F, Fut>(
    window: Duration,
    limit: Duration,
    mut progressed: impl FnMut(&T) -> bool,
    mut probe: F,
) -> Result<(T, bool)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let start = tokio::time::Instant::now();
    let limit = start.checked_add(limit);
    let mut deadline = start.checked_add(window);
    let mut last: Option<T> = None;
    let mut last_err: Option<Error> = None;
    loop {
        match probe().await {
            Ok(Poll::Done(t)) => return Ok((t, true)),
            Ok(Poll::Pending(t)) => {
                if progressed(&t) {
                    deadline = tokio::time::Instant::now().checked_add(window);
                }
                last = Some(t);
            }
            Err(e @ Error::Connection(_)) => last_err = Some(e),
            Err(e) => return Err(e),
        }
        let now = tokio::time::Instant::now();
        let past = |d: Option<tokio::time::Instant>| d.is_some_and(|d| now >= d);
        if past(deadline) || past(limit) {
            return match (last, last_err) {
                (Some(t), _) => Ok((t, false)),
                (None, Some(e)) => Err(e),
                (None, None) => Err(Error::Unverified(
                    "timed out before the first answer".into(),
                )),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The current time in RFC 3339 (for the backup's journal).
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
