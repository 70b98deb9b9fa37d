//! The lock that keeps two runs from replacing the same DaemonSet at once: a
//! coordination.k8s.io/v1 Lease named after it, with a holder identity and an expiry. This
//! module decides from a Lease (and the clock, passed in) whether it can be taken.
//! mirrors client-go leaderelection's rule (tryAcquireOrRenew): a held lease is taken over only
//! once renewTime + leaseDurationSeconds has passed; an empty holderIdentity is free.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The Lease's name for a DaemonSet (in the DaemonSet's namespace).
pub fn lease_name(daemon_set: &str) -> String {
    format!("kubectl-ds-migrate-{daemon_set}")
}

/// Who holds a lease: `kubectl-ds:<host>:<pid>:<nonce>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub nonce: String,
}

impl Holder {
    pub fn identity(&self) -> String {
        format!("kubectl-ds:{}:{}:{}", self.host, self.pid, self.nonce)
    }

    pub fn parse(identity: &str) -> Option<Holder> {
        let rest = identity.strip_prefix("kubectl-ds:")?;
        let mut parts = rest.rsplitn(3, ':');
        let nonce = parts.next()?.to_string();
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(Holder { host, pid, nonce })
    }
}

/// What a Lease found in the cluster means for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Nobody holds it (released, or never renewed): take it.
    Free,
    /// Held by this very run (a renewal).
    Ours,
    /// Its holder stopped renewing it and it expired: take it over.
    Expired { holder: String },
    /// Held by a kubectl-ds process on this host that no longer runs (killed, crashed): take
    /// it over without waiting for the expiry.
    HolderGone { holder: String },
    /// Held and not expired: refuse.
    Held { holder: String, expires: Timestamp },
}

/// When the lease expires: renewTime (or acquireTime) + leaseDurationSeconds.
pub fn expiry(lease: &Lease) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0)?;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.checked_add(SignedDuration::from_secs(secs)).ok()
}

/// Decides whether `me` may take the lease at `now`. `host_has_pid(pid)`: whether a process
/// with that id runs on this host (for a holder that names this host).
pub fn lease_state(
    lease: &Lease,
    me: &Holder,
    now: Timestamp,
    this_host: &str,
    host_has_pid: impl Fn(u32) -> bool,
) -> LeaseState {
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    if holder.is_empty() {
        return LeaseState::Free;
    }
    if holder == me.identity() {
        return LeaseState::Ours;
    }
    match expiry(lease) {
        Some(t) if t > now => {}
        _ => return LeaseState::Expired { holder },
    }
    if let Some(h) = Holder::parse(&holder) {
        if h.host == this_host && h.pid != me.pid && !host_has_pid(h.pid) {
            return LeaseState::HolderGone { holder };
        }
    }
    let expires = expiry(lease).unwrap_or(now);
    LeaseState::Held { holder, expires }
}

/// The holder in words: `kubectl-ds on host H (pid P)`, or the identity as written.
pub fn describe_holder(identity: &str) -> String {
    match Holder::parse(identity) {
        Some(h) => format!("kubectl-ds on host {} (pid {})", h.host, h.pid),
        None => format!("{identity:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(yaml: &str) -> Lease {
        crate::yaml::from_str(yaml).unwrap()
    }

    fn me() -> Holder {
        Holder {
            host: "laptop".into(),
            pid: 100,
            nonce: "a1".into(),
        }
    }

    fn can_take(s: &LeaseState) -> bool {
        !matches!(s, LeaseState::Held { .. })
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const HELD: &str = "metadata: {name: kubectl-ds-migrate-agent}\nspec: {holderIdentity: 'kubectl-ds:ci-runner:4242:z9', leaseDurationSeconds: 30, renewTime: '2026-01-01T00:00:00.000000Z'}";

    #[test]
    fn holder_identity_round_trips() {
        let h = me();
        assert_eq!(Holder::parse(&h.identity()), Some(h));
        assert_eq!(Holder::parse("someone-else"), None);
        assert_eq!(
            describe_holder("kubectl-ds:ci-runner:4242:z9"),
            "kubectl-ds on host ci-runner (pid 4242)"
        );
        assert_eq!(lease_name("kube-proxy"), "kubectl-ds-migrate-kube-proxy");
    }

    #[test]
    fn a_held_lease_is_refused_until_it_expires() {
        let l = lease(HELD);
        let alive = |_| true;
        let s = lease_state(&l, &me(), at("2026-01-01T00:00:29Z"), "laptop", alive);
        assert!(!can_take(&s));
        assert!(
            matches!(&s, LeaseState::Held { holder, expires } if holder.contains("ci-runner") && *expires == at("2026-01-01T00:00:30Z"))
        );
        let s = lease_state(&l, &me(), at("2026-01-01T00:00:31Z"), "laptop", alive);
        assert!(matches!(s, LeaseState::Expired { .. }));
    }

    #[test]
    fn free_ours_and_a_dead_local_holder() {
        let free = lease("metadata: {name: x}\nspec: {leaseDurationSeconds: 30}");
        assert_eq!(
            lease_state(&free, &me(), at("2026-01-01T00:00:00Z"), "laptop", |_| true),
            LeaseState::Free
        );
        let mut ours = lease(HELD);
        ours.spec.as_mut().unwrap().holder_identity = Some(me().identity());
        assert_eq!(
            lease_state(&ours, &me(), at("2026-01-01T00:00:01Z"), "laptop", |_| true),
            LeaseState::Ours
        );
        // A holder on this host whose process is gone (SIGKILL): taken over at once.
        let mut local = lease(HELD);
        local.spec.as_mut().unwrap().holder_identity = Some("kubectl-ds:laptop:4242:z9".into());
        let now = at("2026-01-01T00:00:01Z");
        assert!(matches!(
            lease_state(&local, &me(), now, "laptop", |_| false),
            LeaseState::HolderGone { .. }
        ));
        assert!(!can_take(&lease_state(
            &local,
            &me(),
            now,
            "laptop",
            |_| true
        )));
        // The same pid on another host says nothing about that host's processes.
        assert!(!can_take(&lease_state(&local, &me(), now, "other", |_| {
            false
        })));
    }
}
