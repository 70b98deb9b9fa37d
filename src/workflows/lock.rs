//! One run at a time per DaemonSet: a coordination.k8s.io/v1 Lease `kubectl-ds-migrate-<name>`
//! in its namespace, held with this process's identity for the whole workflow, renewed while it
//! runs, deleted at the end, and taken over only once expired (or at once when its holder was a
//! kubectl-ds process on this host that no longer runs). A second run is refused, naming the
//! holder. The rules are in engine::lease; this is the I/O and the renewal task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

use super::Ctx;
use crate::cluster::client::Cluster;
use crate::cluster::lease::{create_lease, delete_lease, get_lease_opt, replace_lease, LeaseWrite};
use crate::engine::lease::{describe_holder, lease_name, lease_state, Holder, LeaseState};
use crate::error::{Error, Result};

/// How long the lease lasts without a renewal (a killed run blocks others this long at most,
/// unless it ran on the same host).
pub const LEASE_SECONDS: i32 = 30;
/// How often the lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// Attempts when another run races for the same lease.
const ATTEMPTS: usize = 3;

/// The held lock. Call [`RunLock::release`] at the end; if the process dies instead, the lease
/// expires after [`LEASE_SECONDS`].
pub struct RunLock {
    cluster: Cluster,
    ns: String,
    name: String,
    lease: Arc<Mutex<Lease>>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .unwrap_or_else(|| "unknown-host".into())
}

/// Does a process with this id run here? Only Linux can tell (/proc); elsewhere we assume it
/// does, so a stale lease is taken over only once it expires.
fn host_has_pid(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn me() -> Holder {
    let nonce = Timestamp::now().as_nanosecond() % 1_000_000_007;
    Holder {
        host: this_host(),
        pid: std::process::id(),
        nonce: format!("{nonce:x}"),
    }
}

fn stamped(mut lease: Lease, identity: &str, taking_over: bool) -> Lease {
    let now = MicroTime(Timestamp::now());
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if taking_over {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(identity.to_string());
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.renew_time = Some(now);
    lease
}

fn fresh(ns: &str, name: &str, identity: &str) -> Lease {
    let now = MicroTime(Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "kubectl-ds".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

fn held_error(ns: &str, daemon_set: &str, lease: &str, holder: &str, expires: Timestamp) -> Error {
    let left = expires.duration_since(Timestamp::now()).as_secs().max(0);
    Error::Refused(format!(
        "daemonset {ns}/{daemon_set} is being changed by another run: lease {ns}/{lease} is held by {} (expires in {left}s unless renewed); nothing was changed: wait for that run to finish, then run this command again",
        describe_holder(holder)
    ))
}

/// Takes the lock for `daemon_set`, or refuses naming the holder.
pub async fn acquire(ctx: &Ctx<'_>, daemon_set: &str) -> Result<RunLock> {
    let ns = ctx.ns().to_string();
    let name = lease_name(daemon_set);
    let me = me();
    let identity = me.identity();
    let host = me.host.clone();
    for _ in 0..ATTEMPTS {
        let existing = get_lease_opt(&ctx.cluster, &ns, &name)
            .await
            .map_err(|e| e.context("taking the lock, nothing was changed"))?;
        let write = match existing {
            None => create_lease(&ctx.cluster, &ns, &fresh(&ns, &name, &identity))
                .await
                .map_err(|e| e.context("taking the lock, nothing was changed"))?,
            Some(l) => match lease_state(&l, &me, Timestamp::now(), &host, host_has_pid) {
                LeaseState::Held { holder, expires } => {
                    return Err(held_error(&ns, daemon_set, &name, &holder, expires))
                }
                state => {
                    if let LeaseState::Expired { holder } | LeaseState::HolderGone { holder } =
                        &state
                    {
                        ctx.progress(&format!(
                            "taking over lease {ns}/{name} from {} ({})",
                            describe_holder(holder),
                            if matches!(state, LeaseState::Expired { .. }) {
                                "expired"
                            } else {
                                "that process no longer runs"
                            }
                        ));
                    }
                    replace_lease(&ctx.cluster, &ns, &stamped(l, &identity, true))
                        .await
                        .map_err(|e| e.context("taking the lock, nothing was changed"))?
                }
            },
        };
        if let LeaseWrite::Written(lease) = write {
            let lease = Arc::new(Mutex::new(*lease));
            let lost = Arc::new(AtomicBool::new(false));
            let renewer = tokio::spawn(renew(
                ctx.cluster.clone(),
                ns.clone(),
                identity.clone(),
                lease.clone(),
                lost.clone(),
            ));
            return Ok(RunLock {
                cluster: ctx.cluster.clone(),
                ns,
                name,
                lease,
                lost,
                renewer,
            });
        }
    }
    Err(Error::Refused(format!(
        "lease {ns}/{name} kept changing while taking it: another run is starting; nothing was changed"
    )))
}

/// The refusal to give when `daemon_set` is not there to plan from while another run holds
/// its lease (that run deleted it a moment ago, mid-way through its own workflow): a run only
/// takes the lease once it has a plan, so this one would otherwise say "not found". Reads only;
/// `None` when no live lease is held (or it cannot be read).
pub async fn held_by_another_run(ctx: &Ctx<'_>, daemon_set: &str) -> Option<Error> {
    let ns = ctx.ns().to_string();
    let name = lease_name(daemon_set);
    let lease = get_lease_opt(&ctx.cluster, &ns, &name).await.ok()??;
    let me = me();
    match lease_state(&lease, &me, Timestamp::now(), &me.host, host_has_pid) {
        LeaseState::Held { holder, expires } => {
            Some(held_error(&ns, daemon_set, &name, &holder, expires))
        }
        _ => None,
    }
}

/// Renews the lease every [`RENEW_EVERY`] until aborted; marks it lost if someone else took it.
async fn renew(
    cluster: Cluster,
    ns: String,
    identity: String,
    lease: Arc<Mutex<Lease>>,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let current = lease.lock().ok().map(|l| l.clone());
        let Some(current) = current else { return };
        match replace_lease(&cluster, &ns, &stamped(current, &identity, false)).await {
            Ok(LeaseWrite::Written(l)) => {
                if let Ok(mut guard) = lease.lock() {
                    *guard = *l;
                }
            }
            Ok(LeaseWrite::Conflict) => {
                let name = lease.lock().ok().and_then(|l| l.metadata.name.clone());
                let now = match name {
                    Some(n) => get_lease_opt(&cluster, &ns, &n).await.ok().flatten(),
                    None => None,
                };
                match now {
                    Some(l) if holder_of(&l) == Some(identity.as_str()) => {
                        if let Ok(mut guard) = lease.lock() {
                            *guard = l;
                        }
                    }
                    _ => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
            // The apiserver may be briefly unreachable: try again at the next tick.
            Err(_) => {}
        }
    }
}

fn holder_of(l: &Lease) -> Option<&str> {
    l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
}

impl RunLock {
    /// Refuses to go on if another run took the lease (this one stopped renewing in time).
    pub fn ensure_held(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Refused(format!(
                "lease {}/{} was taken by another run; stopping before the next change",
                self.ns, self.name
            )));
        }
        Ok(())
    }

    /// Stops renewing and deletes the lease if this run still holds it.
    pub async fn release(self) {
        self.renewer.abort();
        let _ = self.renewer.await;
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        let Some(mut lease) = self.lease.lock().ok().map(|l| l.clone()) else {
            return;
        };
        // A renewal cut short may have moved the resourceVersion on: read it once more.
        for _ in 0..2 {
            match delete_lease(&self.cluster, &self.ns, &lease).await {
                Ok(true) => return,
                Ok(false) => match get_lease_opt(&self.cluster, &self.ns, &self.name).await {
                    Ok(Some(l)) if holder_of(&l) == holder_of(&lease) => lease = l,
                    _ => return,
                },
                Err(e) => {
                    eprintln!(
                        "warning: could not release lease {}/{} ({e}); it expires in {LEASE_SECONDS}s",
                        self.ns, self.name
                    );
                    return;
                }
            }
        }
    }
}
