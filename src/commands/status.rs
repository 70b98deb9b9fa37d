//! `kubectl ds status NAME`: follow a rollout live. One fetch as `explain` makes it gives the
//! first screen and is the watches' initial list; the watches (cluster::watch), started from
//! its lists' resourceVersions, keep that snapshot current; on each change the pure explain
//! engine recomputes every node's verdict and engine::status diffs it against the previous
//! one. Output: one line (or JSON object) per node change, or a screen redrawn in place on a
//! terminal.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::cli::{Output, StatusArgs};
use crate::cluster::client::{self, Cluster};
use crate::cluster::fetch;
use crate::cluster::watch::{self, LiveSnapshot};
use crate::engine::explain::{self, Explanation, NodeFilter, API_VERSION};
use crate::engine::status::{
    self, NodeMark, Outcome, Progress, StatusSummary, StuckReport, StuckVerdict, Wave,
};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::{self, status as view};
use crate::settings::{parse_duration, Settings};

/// How often the loop wakes without a watch event (timeouts, the screen's clock).
const TICK: Duration = Duration::from_millis(200);
/// Watch events are gathered for this long before a recomputation (a rollout of 5,000 pods
/// sends tens of thousands of events).
const SETTLE: Duration = Duration::from_millis(150);
/// At most this many nodes with a Pending new pod get their other pods read for a stuck verdict.
const STUCK_FIT_CHECK_NODES: usize = 50;
/// While a pod waits for minReadySeconds, recompute this often (no event marks the moment).
const TIME_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    Json,
    Screen,
}

/// The resolved flags.
struct Options {
    mode: Mode,
    timeout: Option<Duration>,
    stuck_after: Duration,
    fail_on_stuck: bool,
}

impl Options {
    fn resolve(args: &StatusArgs, settings: &Settings) -> Result<Options> {
        let mode = match args.output {
            Output::Json => Mode::Json,
            Output::Table | Output::Wide if settings.stdout_is_tty => Mode::Screen,
            Output::Table | Output::Wide => Mode::Lines,
            Output::Yaml => {
                return Err(Error::Usage(
                    "status -o yaml is not supported: use -o json (one object per line)".into(),
                ))
            }
        };
        let timeout = parse_duration(&args.timeout)
            .map_err(|e| Error::Usage(format!("invalid --timeout: {e}")))?;
        let stuck_after = parse_duration(&args.stuck_after)
            .map_err(|e| Error::Usage(format!("invalid --stuck-after: {e}")))?;
        if stuck_after.is_zero() {
            return Err(Error::Usage(
                "invalid --stuck-after: must be more than 0".into(),
            ));
        }
        Ok(Options {
            mode,
            timeout: (!timeout.is_zero()).then_some(timeout),
            stuck_after,
            fail_on_stuck: args.fail_on_stuck,
        })
    }
}

pub async fn run(args: StatusArgs, settings: &Settings) -> Result<Exit> {
    let opts = Options::resolve(&args, settings)?;
    let cluster = client::connect(settings).await?;
    let (ds, ds_version) =
        fetch::fetch_daemon_set_listed(&cluster, &cluster.namespace, &args.name).await?;
    // The first screen comes from one fetch as explain makes it, and that fetch is the
    // watches' list: each watch starts at its list's resourceVersion, so whatever changes
    // after the list (also while the first screen is drawn) arrives as a watch event.
    let (seed, versions) = fetch::fetch_watched(&cluster, ds, ds_version).await?;
    let updates = watch::watch_all(&cluster, &seed.daemon_set, versions);
    let live = LiveSnapshot::new(seed);
    let mut out = std::io::stdout().lock();
    let mut follower = Follower::new(live, opts, cluster);
    let result = follower.follow(&mut out, updates).await;
    if follower.opts.mode == Mode::Screen {
        // Whatever happened: the cursor visible again, the prompt below the screen.
        let _ = write!(out, "{SHOW_CURSOR}");
        let _ = out.flush();
    }
    result
}

const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";

/// The state of one run: the live snapshot, the previous marks, progress and the stuck clock.
struct Follower {
    live: LiveSnapshot,
    opts: Options,
    started: Instant,
    marks: BTreeMap<String, NodeMark>,
    progress: Progress,
    /// Progress when first computed and when it last moved (for the estimate and stuck).
    first: Option<(Instant, Progress)>,
    last_move: Instant,
    stuck: Vec<StuckVerdict>,
    /// The rolling update's wave at the last recomputation.
    wave: Option<Wave>,
    changes: usize,
    /// For what the watches do not keep: the other pods on nodes where a new pod is Pending
    /// (fit and preemption), read once when a stuck verdict is made.
    cluster: Cluster,
    /// A watch error was reported on stderr and no event got through since.
    warned: bool,
}

impl Follower {
    fn new(live: LiveSnapshot, opts: Options, cluster: Cluster) -> Follower {
        Follower {
            live,
            opts,
            started: Instant::now(),
            marks: BTreeMap::new(),
            progress: Progress::default(),
            first: None,
            last_move: Instant::now(),
            stuck: Vec::new(),
            wave: None,
            changes: 0,
            cluster,
            warned: false,
        }
    }

    async fn follow<W: Write>(
        &mut self,
        out: &mut W,
        mut updates: futures::stream::BoxStream<'static, watch::Update>,
    ) -> Result<Exit> {
        let deadline = self.opts.timeout.map(|t| self.started + t);
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty_since: Option<Instant> = None;
        let mut last_compute = Instant::now();
        let mut last_draw = Instant::now();
        if self.opts.mode == Mode::Screen {
            write!(out, "{HIDE_CURSOR}\x1b[2J\x1b[H").map_err(render::io_err)?;
        }
        // The first screen from the seed, which is every kind's list: verdicts, the end and
        // stuck verdicts hold from the start.
        let mut current = self.recompute(out)?;
        if status::is_done(&self.live.snap, &current, &self.progress) {
            return self.finish(out, &current, Outcome::Complete);
        }
        if self.opts.mode == Mode::Screen {
            self.draw(out, &current, false)?;
        }
        loop {
            tokio::select! {
                update = updates.next() => {
                    let Some(update) = update else {
                        return Err(Error::Connection("the watch streams ended".into()));
                    };
                    if self.live.apply(update) {
                        dirty_since.get_or_insert_with(Instant::now);
                    }
                    self.warn_watch_error();
                    continue;
                }
                _ = tick.tick() => {}
                _ = &mut ctrl_c => {
                    return self.finish(out, &current, Outcome::Interrupted);
                }
            }
            if self.live.is_deleted() {
                return Err(Error::NotFound {
                    message: format!(
                        "daemonset {:?} was deleted while its rollout was followed",
                        self.live.snap.name()
                    ),
                    hint: None,
                });
            }
            let now = Instant::now();
            let recheck = status::awaits_time(&self.marks)
                && now.duration_since(last_compute) >= TIME_RECHECK;
            let settled = dirty_since.is_some_and(|t| now.duration_since(t) >= SETTLE);
            if settled || recheck {
                dirty_since = None;
                last_compute = now;
                current = self.recompute(out)?;
                if status::is_done(&self.live.snap, &current, &self.progress) {
                    return self.finish(out, &current, Outcome::Complete);
                }
            }
            if let Some(exit) = self.check_stuck(out, &current).await? {
                return Ok(exit);
            }
            if deadline.is_some_and(|d| now >= d) {
                if self.stuck.is_empty() {
                    self.stuck = self.stuck_verdicts(&current).await;
                }
                return self.finish(out, &current, Outcome::Timeout);
            }
            if self.opts.mode == Mode::Screen
                && (last_draw.elapsed() >= Duration::from_secs(1) || last_compute == now)
            {
                last_draw = now;
                self.draw(out, &current, false)?;
            }
        }
    }

    /// Says once on stderr (not on the screen, which shows it) that a watch failed and is
    /// being resumed; again only after a watch event got through.
    fn warn_watch_error(&mut self) {
        match (&self.live.last_error, self.warned) {
            (Some(err), false) => {
                self.warned = true;
                if self.opts.mode != Mode::Screen {
                    eprintln!(
                        "warning: a watch failed, resuming: {}",
                        crate::render::term::escape(err)
                    );
                }
            }
            (None, true) => self.warned = false,
            _ => {}
        }
    }

    /// Explains the current snapshot, emits the node changes, updates progress.
    fn recompute<W: Write>(&mut self, out: &mut W) -> Result<Explanation> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        self.live.snap.now = Some(now.clone());
        let e = explain::explain(&self.live.snap, &NodeFilter::default());
        let marks = status::marks(&e, &self.live.snap);
        let changes = status::diff(&self.marks, &marks, &now);
        self.changes += changes.len();
        for c in &changes {
            match self.opts.mode {
                Mode::Lines => writeln!(out, "{}", view::change_line(c)).map_err(render::io_err)?,
                Mode::Json => json_line(out, c)?,
                Mode::Screen => {}
            }
        }
        out.flush().map_err(render::io_err)?;
        let progress = status::progress(&e, &marks);
        self.wave = status::wave(&self.live.snap, &e, &marks);
        if self.first.is_none() {
            self.first = Some((Instant::now(), progress));
        }
        if progress != self.progress {
            self.last_move = Instant::now();
            self.stuck.clear();
        }
        self.progress = progress;
        self.marks = marks;
        Ok(e)
    }

    /// Reports a stretch without progress once; with --fail-on-stuck, ends the run.
    async fn check_stuck<W: Write>(
        &mut self,
        out: &mut W,
        e: &Explanation,
    ) -> Result<Option<Exit>> {
        let quiet = self.last_move.elapsed();
        if quiet < self.opts.stuck_after || !self.stuck.is_empty() {
            return Ok(None);
        }
        self.stuck = self.stuck_verdicts(e).await;
        if self.opts.fail_on_stuck {
            return self.finish(out, e, Outcome::Stuck).map(Some);
        }
        let time = now_text();
        match self.opts.mode {
            Mode::Lines => {
                for line in view::stuck_lines(&time, &self.stuck) {
                    writeln!(out, "{line}").map_err(render::io_err)?;
                }
            }
            Mode::Json => json_line(
                out,
                &StuckReport {
                    api_version: API_VERSION.into(),
                    kind: "Stuck".into(),
                    time,
                    since_seconds: quiet.as_secs(),
                    verdicts: self.stuck.clone(),
                },
            )?,
            Mode::Screen => {}
        }
        out.flush().map_err(render::io_err)?;
        Ok(None)
    }

    /// Why nothing progresses. Where a new pod is Pending, the pods bound to its node (and the
    /// PodDisruptionBudgets of possible preemption victims) are read once, as `explain` reads
    /// them, so the verdict can name the misfit and what preemption would do; they are dropped
    /// again (the watches do not keep them current). When they cannot be read, the verdict is
    /// made without them.
    async fn stuck_verdicts(&mut self, e: &Explanation) -> Vec<StuckVerdict> {
        let mut pending = explain::nodes_needing_fit_check(&self.live.snap);
        // A verdict names ten nodes; a rollout with thousands of Pending pods is not read
        // node by node at each stuck stretch (the rest keep the scheduler's own reason).
        pending.truncate(STUCK_FIT_CHECK_NODES);
        if pending.is_empty() {
            return status::stuck_verdicts(&self.live.snap, e, &self.marks);
        }
        let snap = &mut self.live.snap;
        if let Ok(on_nodes) = fetch::fetch_pods_on_nodes(&self.cluster, &pending).await {
            snap.pods_on_nodes = on_nodes;
            let namespaces = explain::preemption_namespaces(snap);
            snap.priorities.pdbs = fetch::fetch_pdbs(&self.cluster, &namespaces)
                .await
                .ok()
                .flatten();
        }
        let enriched = explain::explain(snap, &NodeFilter::default());
        let verdicts = status::stuck_verdicts(snap, &enriched, &self.marks);
        snap.pods_on_nodes = Default::default();
        snap.priorities = Default::default();
        verdicts
    }

    /// The summary (line, JSON object, or the last screen and a line) and the exit code.
    fn finish<W: Write>(&mut self, out: &mut W, e: &Explanation, outcome: Outcome) -> Result<Exit> {
        if outcome != Outcome::Complete && self.stuck.is_empty() {
            self.stuck = status::stuck_verdicts(&self.live.snap, e, &self.marks);
        }
        let summary = StatusSummary {
            api_version: API_VERSION.into(),
            kind: "StatusSummary".into(),
            time: now_text(),
            namespace: self.live.snap.namespace().to_string(),
            name: self.live.snap.name().to_string(),
            outcome,
            elapsed_seconds: self.started.elapsed().as_secs(),
            progress: self.progress,
            changes: self.changes,
            stuck: if outcome == Outcome::Complete {
                Vec::new()
            } else {
                self.stuck.clone()
            },
            wave: self.wave,
        };
        match self.opts.mode {
            Mode::Json => json_line(out, &summary)?,
            Mode::Lines => {
                for line in view::summary_lines(&summary) {
                    writeln!(out, "{line}").map_err(render::io_err)?;
                }
            }
            Mode::Screen => {
                self.draw(out, e, outcome == Outcome::Complete)?;
                writeln!(out).map_err(render::io_err)?;
                if let Some(line) = view::summary_lines(&summary).first() {
                    writeln!(out, "{line}").map_err(render::io_err)?;
                }
            }
        }
        out.flush().map_err(render::io_err)?;
        Ok(match outcome {
            Outcome::Complete => Exit::Ok,
            Outcome::Timeout => Exit::Timeout,
            Outcome::Stuck => Exit::Stuck,
            Outcome::Interrupted => Exit::Interrupted,
        })
    }

    /// Redraws the screen in place: home, each line cleared to its end, the rest cleared.
    fn draw<W: Write>(&mut self, out: &mut W, e: &Explanation, done: bool) -> Result<()> {
        let (width, height) = terminal_size();
        let note = self
            .live
            .last_error
            .as_ref()
            .map(|err| format!("watch interrupted, resuming: {err}"));
        let screen = view::screen(
            &view::ScreenView {
                namespace: self.live.snap.namespace(),
                name: self.live.snap.name(),
                strategy: &e.daemon_set.update_strategy,
                progress: self.progress,
                wave: self.wave,
                elapsed: self.started.elapsed(),
                left: self.estimate(),
                marks: &self.marks,
                stuck: &self.stuck,
                note: note.as_deref(),
                done,
            },
            width,
            // One line kept free: the cursor rests below the screen without scrolling it.
            height.saturating_sub(1),
        );
        let mut text = String::from("\x1b[H");
        for line in &screen {
            text.push_str(line);
            text.push_str("\x1b[K\n");
        }
        text.push_str("\x1b[J");
        out.write_all(text.as_bytes()).map_err(render::io_err)?;
        out.flush().map_err(render::io_err)
    }

    /// Time left at the rate nodes finished since the run started.
    fn estimate(&self) -> Option<Duration> {
        let (since, first) = self.first?;
        let gained = self.progress.done - first.done;
        let left = self.progress.desired - self.progress.done;
        if gained <= 0 || left <= 0 {
            return None;
        }
        let per_node = since.elapsed().as_secs_f64() / f64::from(gained);
        Some(Duration::from_secs_f64(per_node * f64::from(left)))
    }
}

fn json_line<W: Write, T: serde::Serialize>(out: &mut W, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(|e| render::io_err(e.into()))?;
    writeln!(out).map_err(render::io_err)
}

fn now_text() -> String {
    status::time_text(&Time(k8s_openapi::jiff::Timestamp::now()))
}

/// The terminal's size (columns, rows); 80x24 when it cannot be read.
fn terminal_size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => {
            (usize::from(ws.ws_col), usize::from(ws.ws_row))
        }
        _ => (80, 24),
    }
}
