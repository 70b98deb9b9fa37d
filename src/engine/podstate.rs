//! What a DaemonSet pod's own status says: ready, available, waiting, crash-looping, failed.

use crate::engine::model::Pod;
use k8s_openapi::api::core::v1::ContainerStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::reason::Reason;

/// mirrors podutil.IsPodReady: the Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// mirrors podutil.IsPodAvailable: Ready, and Ready for at least minReadySeconds.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Option<&Time>) -> bool {
    let Some(cond) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    match (cond.last_transition_time.as_ref(), now) {
        (Some(t), Some(now)) => {
            let ready_for = now.0.as_second() - t.0.as_second();
            ready_for >= i64::from(min_ready_seconds)
        }
        _ => false,
    }
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The node the pod is bound to or pinned to.
/// mirrors daemonset_util.go GetTargetNodeName
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|f| {
            let vals = f.values.as_deref().unwrap_or(&[]);
            (f.key == "metadata.name" && f.operator == "In" && vals.len() == 1)
                .then(|| vals[0].clone())
        })
    })
}

/// Is the pod bound to a node?
pub fn is_scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Why a scheduled pod is not Ready (or has failed): container waiting reasons, crash loops,
/// image pulls; PodNotReady when nothing more specific is known.
pub fn unhealthy_reasons(pod: &Pod) -> Vec<Reason> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    if phase(pod) == "Failed" {
        let detail = status.message.clone().or(status.reason.clone());
        return vec![Reason::PodFailed { pod: name, detail }];
    }
    let mut out = Vec::new();
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in containers {
        if let Some(r) = container_reason(cs) {
            out.push(r);
        }
    }
    if out.is_empty() && !is_ready(pod) {
        let detail = ready_condition(pod).and_then(|c| c.message.clone().or(c.reason.clone()));
        out.push(Reason::PodNotReady { detail });
    }
    out
}

fn container_reason(cs: &ContainerStatus) -> Option<Reason> {
    let waiting = cs.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.clone().unwrap_or_default();
    let detail = waiting.message.clone();
    let container = cs.name.clone();
    Some(match reason.as_str() {
        "CrashLoopBackOff" => {
            let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            Reason::CrashLoopBackOff {
                container,
                restarts: cs.restart_count,
                last_exit_code: last.map(|t| t.exit_code),
                last_reason: last.and_then(|t| t.reason.clone()),
            }
        }
        "ImagePullBackOff" => Reason::ImagePullBackOff {
            container,
            image: cs.image.clone(),
            detail,
        },
        "ErrImagePull" => Reason::ErrImagePull {
            container,
            image: cs.image.clone(),
            detail,
        },
        "ContainerCreating" => Reason::ContainerCreating { container },
        "" => return None,
        _ => Reason::ContainerWaiting {
            container,
            reason,
            detail,
        },
    })
}

/// mirrors daemon_controller.go podByCreationTimestampAndPhase: scheduled pods first, then the
/// oldest, then by name. The controller inspects only the first.
pub fn oldest_first(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let sa = is_scheduled(a);
        let sb = is_scheduled(b);
        sb.cmp(&sa)
            .then_with(|| {
                let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ta.cmp(&tb)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::pod;

    #[test]
    fn crash_loop_with_last_exit() {
        let p = pod("
metadata: {name: p}
spec: {nodeName: n1, containers: [{name: agent}]}
status:
  phase: Running
  conditions: [{type: Ready, status: 'False'}]
  containerStatuses:
  - name: agent
    image: agent:1
    imageID: ''
    ready: false
    restartCount: 7
    lastState: {terminated: {exitCode: 137, reason: OOMKilled}}
    state: {waiting: {reason: CrashLoopBackOff, message: back-off}}
");
        assert_eq!(
            unhealthy_reasons(&p),
            vec![Reason::CrashLoopBackOff {
                container: "agent".into(),
                restarts: 7,
                last_exit_code: Some(137),
                last_reason: Some("OOMKilled".into())
            }]
        );
        assert!(!is_ready(&p));
    }

    #[test]
    fn not_ready_without_waiting_reason() {
        let p = pod("
metadata: {name: p}
spec: {nodeName: n1, containers: [{name: agent}]}
status:
  phase: Running
  conditions: [{type: Ready, status: 'False', reason: ContainersNotReady, message: 'containers with unready status: [agent]'}]
");
        assert!(
            matches!(&unhealthy_reasons(&p)[0], Reason::PodNotReady { detail: Some(d) } if d.contains("unready"))
        );
    }

    #[test]
    fn target_node_from_pinning_affinity() {
        let p = pod("
metadata: {name: p}
spec:
  containers: [{name: c}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchFields: [{key: metadata.name, operator: In, values: [n7]}]
");
        assert_eq!(target_node(&p).as_deref(), Some("n7"));
        assert!(!is_scheduled(&p));
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let p = pod("
metadata: {name: p}
spec: {nodeName: n1, containers: [{name: c}]}
status:
  conditions: [{type: Ready, status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z'}]
");
        let now = |s: &str| Time(s.parse().unwrap());
        assert!(is_available(&p, 0, None));
        assert!(!is_available(&p, 30, Some(&now("2026-01-01T00:00:10Z"))));
        assert!(is_available(&p, 30, Some(&now("2026-01-01T00:00:31Z"))));
    }
}
