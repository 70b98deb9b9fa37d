//! Differential testing against the real controllers: random clusters and random DaemonSets on
//! the dev control plane, deterministic by seed, and kubectl-ds's answer compared node by node
//! with what the real DaemonSet controller and scheduler did.
//!
//! - explain mode: let the controllers settle, record per node what they did (no pod, pending,
//!   running not ready, ready) and compare with `explain`'s state and shouldRun.
//! - preview mode: a random change, `rollout-preview`, apply it for real, wait until the rollout
//!   has settled, compare each node's predicted action with what happened, and `templateChanged`
//!   with whether a new ControllerRevision appeared.
//!
//! CI runs a few trials (`KDS_DIFFTEST_TRIALS`, default 6 per mode, 3 at a time in their own
//! namespaces); `scripts/difftest --trials N --seed S [--mode explain|preview]` runs long ones.
//! Every
//! disagreement is printed with the node, the templates before and after and the trial's seed
//! (`scripts/difftest --trials 1 --seed SEED` replays it), and fails the test.
//!
//! Exclusions (situations the generator does not draw, named so they are not mistaken for
//! coverage; preemption and admission are modelled by kubectl-ds and tested by
//! tests/it/e2e_preemption.rs and e2e_admission.rs, not yet by this generator):
//! - PREEMPTION: the DaemonSet's PriorityClasses never preempt (`kds-difftest-ds-low` is below
//!   the `kds-difftest-hog` pods', `kds-difftest-ds-never` has preemptionPolicy Never), so a
//!   pod that does not fit stays Pending as kubectl-ds predicts.
//! - ADMISSION MUTATION: no mutating webhooks, LimitRanges or ResourceQuotas.
//! - VERSIONS: on servers without DaemonSet maxSurge (before 1.22) no surge strategy is drawn.
//! - ORDER: node order inside a wave is the controller's random choice (Go map iteration).
//!   When the preview says the rollout stalls (Blocked desired nodes use up the budget), which
//!   nodes were reached before the stall is random: there a Restart, Blocked or rolling Delete
//!   node may also be found untouched (counted apart as "order-dependent", never as agreement
//!   on a node whose outcome does not depend on order).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

use crate::harness::{kubeconfig, NodeSpec, Output, TestEnv, TEST_LABEL};

// ---- a small deterministic PRNG (SplitMix64) ----

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// ---- configuration ----

struct Config {
    trials: u64,
    seed: u64,
    parallel: usize,
}

fn config() -> Config {
    let num = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    Config {
        trials: num("KDS_DIFFTEST_TRIALS", 6),
        seed: num("KDS_DIFFTEST_SEED", 20_261_130),
        parallel: num("KDS_DIFFTEST_PARALLEL", 3).max(1) as usize,
    }
}

// ---- the random cluster ----

const LABELS: [(&str, &[&str]); 4] = [
    ("zone", &["a", "b", "c"]),
    ("tier", &["1", "2", "3", "4", "5"]),
    ("disk", &["ssd", "hdd"]),
    ("gpu", &["true"]),
];
const TAINT_KEYS: [(&str, &[&str]); 3] = [
    ("dedicated", &["x", "y"]),
    ("gpu", &["true"]),
    ("maint", &[""]),
];
const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const HOST_PORT: i32 = 9100;

#[derive(Debug, Clone)]
struct NodeGen {
    suffix: String,
    labels: Vec<(String, String)>,
    taints: Vec<Value>,
    cpu: &'static str,
    pods: &'static str,
    unschedulable: bool,
    not_ready: bool,
    /// Another pod bound to the node: (cpu request, holds the host port).
    hog: Option<(&'static str, bool)>,
}

fn gen_nodes(rng: &mut Rng) -> Vec<NodeGen> {
    let n = 3 + rng.below(3);
    (0..n)
        .map(|i| {
            let mut labels = Vec::new();
            for (k, vs) in LABELS {
                if rng.chance(60) {
                    labels.push((k.to_string(), rng.pick(vs).to_string()));
                }
            }
            let mut taints = Vec::new();
            let mut keys = BTreeSet::new();
            // Half the nodes untainted, so most DaemonSets have somewhere to run.
            for _ in 0..*rng.pick(&[0, 0, 0, 1, 1, 2]) {
                let (k, vs) = *rng.pick(&TAINT_KEYS);
                let effect = *rng.pick(&EFFECTS);
                if keys.insert((k, effect)) {
                    let mut t = json!({"key": k, "effect": effect});
                    let v = *rng.pick(vs);
                    if !v.is_empty() {
                        t["value"] = json!(v);
                    }
                    taints.push(t);
                }
            }
            let cpu = *rng.pick(&["1", "2", "32"]);
            let hog = rng
                .chance(40)
                .then(|| (*rng.pick(&["300m", "700m", "950m"]), rng.chance(50)));
            let pods = if hog.is_some() && rng.chance(15) {
                "1"
            } else {
                "110"
            };
            NodeGen {
                suffix: format!("n{i}"),
                labels,
                taints,
                cpu,
                pods,
                unschedulable: rng.chance(15),
                not_ready: rng.chance(10),
                hog,
            }
        })
        .collect()
}

/// The PriorityClasses the generator uses (cluster-scoped, shared by every trial, never
/// deleted: three small objects).
async fn ensure_priority_classes(env: &TestEnv) {
    let api: Api<PriorityClass> = Api::all(env.client.clone());
    for (name, value, policy) in [
        ("kds-difftest-hog", 1000, "PreemptLowerPriority"),
        ("kds-difftest-ds-low", 10, "PreemptLowerPriority"),
        ("kds-difftest-ds-never", 2000, "Never"),
    ] {
        let pc: PriorityClass = serde_json::from_value(json!({
            "metadata": {"name": name}, "value": value, "preemptionPolicy": policy
        }))
        .unwrap();
        match api.create(&PostParams::default(), &pc).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create PriorityClass {name}: {e}"),
        }
    }
}

async fn build_cluster(env: &mut TestEnv, nodes: &[NodeGen]) -> Vec<String> {
    let mut names = Vec::new();
    for n in nodes {
        let spec = NodeSpec {
            taints: n.taints.clone(),
            cpu: Some(n.cpu),
            pods: Some(n.pods),
            unschedulable: n.unschedulable,
            not_ready: n.not_ready,
            ..Default::default()
        };
        let name = env.node_with_labels(&n.suffix, &n.labels, spec).await;
        if let Some((cpu, port)) = n.hog {
            let mut c = json!({"name": "c", "image": "hog",
                "resources": {"requests": {"cpu": cpu}}});
            if port {
                c["ports"] = json!([{"containerPort": HOST_PORT, "hostPort": HOST_PORT}]);
            }
            let hog: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("hog-{}", n.suffix), "namespace": env.ns},
                "spec": {"nodeName": name, "terminationGracePeriodSeconds": 0,
                         "priorityClassName": "kds-difftest-hog",
                         "tolerations": [{"operator": "Exists"}], "containers": [c]}
            }))
            .unwrap();
            env.pod_api()
                .create(&PostParams::default(), &hog)
                .await
                .expect("create hog pod");
        }
        names.push(name);
    }
    // NotReady nodes: wait for the node lifecycle controller's NoSchedule not-ready taint (the
    // one that decides placement: DaemonSet pods tolerate only its NoExecute twin), so the
    // cluster is static when the DaemonSet arrives. The NoExecute twin is rate limited by the
    // zone-disruption rules (every test node is in zone "": with many NotReady nodes the
    // controller stops adding it, seen on 1.20.2) and changes nothing for DaemonSet pods.
    let api: Api<Node> = Api::all(env.client.clone());
    for (n, name) in nodes.iter().zip(&names) {
        if !n.not_ready {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let node = api.get(name).await.expect("get node");
            let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
            let has = |effect: &str| {
                taints
                    .iter()
                    .any(|t| t.key == "node.kubernetes.io/not-ready" && t.effect == effect)
            };
            if has("NoSchedule") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {name} never got the not-ready NoSchedule taint"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    names
}

// ---- the random DaemonSet ----

fn gen_affinity(rng: &mut Rng) -> Value {
    let ops = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];
    let terms: Vec<Value> = (0..1 + rng.below(2))
        .map(|_| {
            let exprs: Vec<Value> = (0..1 + rng.below(2))
                .map(|_| {
                    let op = *rng.pick(&ops);
                    let (key, values) = match op {
                        "Gt" | "Lt" => ("tier", vec![rng.pick(&["1", "2", "3", "4"]).to_string()]),
                        _ => {
                            let (k, vs) = *rng.pick(&LABELS);
                            (k, vec![rng.pick(vs).to_string()])
                        }
                    };
                    let mut e = json!({"key": key, "operator": op});
                    if !matches!(op, "Exists" | "DoesNotExist") {
                        e["values"] = json!(values);
                    }
                    e
                })
                .collect();
            json!({"matchExpressions": exprs})
        })
        .collect();
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}})
}

fn gen_tolerations(rng: &mut Rng) -> Vec<Value> {
    let mut out = Vec::new();
    if rng.chance(8) {
        out.push(json!({"operator": "Exists"}));
    }
    for (k, vs) in TAINT_KEYS {
        if !rng.chance(45) {
            continue;
        }
        let mut t = if rng.chance(50) {
            json!({"key": k, "operator": "Exists"})
        } else {
            json!({"key": k, "operator": "Equal", "value": rng.pick(vs)})
        };
        if rng.chance(60) {
            t["effect"] = json!(rng.pick(&EFFECTS));
        }
        out.push(t);
    }
    out
}

fn gen_requests(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!({}),
        1 => json!({"requests": {"cpu": "100m"}}),
        2 => json!({"requests": {"cpu": "500m"}}),
        _ => json!({"requests": {"cpu": "1"}}),
    }
}

/// Whether the server has DaemonSet `maxSurge` (alpha in 1.21, on by default from 1.22, GA
/// 1.25): read once per run from `/version` by [`run_trials`]. Without it the surge branch of
/// [`gen_strategy`] draws a maxUnavailable strategy instead (an older apiserver drops the
/// field and refuses `maxUnavailable: 0`).
static SURGE_SERVED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn surge_served() -> bool {
    *SURGE_SERVED.get().unwrap_or(&true)
}

fn gen_strategy(rng: &mut Rng) -> Value {
    let draw = rng.below(5);
    let draw = if draw >= 3 && !surge_served() {
        1
    } else {
        draw
    };
    match draw {
        0 => json!({"type": "OnDelete"}),
        1 | 2 => {
            let mu = rng
                .pick(&[json!(1), json!(2), json!("50%"), json!("34%")])
                .clone();
            if surge_served() {
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": mu, "maxSurge": 0}})
            } else {
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": mu}})
            }
        }
        _ => {
            let ms = rng.pick(&[json!(1), json!(2), json!("50%")]).clone();
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": ms}})
        }
    }
}

/// A DaemonSet selecting the trial's nodes, with everything random under the template;
/// `unready` lets its pods sometimes never turn Ready (the KWOK knob `kubectl-ds.dev/sim:
/// notready`; explain mode only: in preview mode it would stall most rollouts).
fn gen_daemon_set(rng: &mut Rng, ns: &str, unready: bool) -> Value {
    let mut node_selector = json!({TEST_LABEL: ns});
    if rng.chance(20) {
        let (k, vs) = *rng.pick(&LABELS);
        node_selector[k] = json!(rng.pick(vs));
    }
    let mut container = json!({"name": "agent", "image": "registry.example/agent:1",
        "resources": gen_requests(rng)});
    let host_network = rng.chance(15);
    if host_network || rng.chance(25) {
        container["ports"] = json!([{"containerPort": HOST_PORT, "hostPort": HOST_PORT}]);
    }
    let mut spec = json!({
        "nodeSelector": node_selector,
        "terminationGracePeriodSeconds": 0,
        "containers": [container],
        "tolerations": gen_tolerations(rng),
    });
    if host_network {
        spec["hostNetwork"] = json!(true);
    }
    if rng.chance(40) {
        spec["affinity"] = gen_affinity(rng);
    }
    match rng.below(3) {
        0 => spec["priorityClassName"] = json!("kds-difftest-ds-low"),
        1 => spec["priorityClassName"] = json!("kds-difftest-ds-never"),
        _ => {}
    }
    let mut metadata = json!({"labels": {"app": "agent"}});
    if unready && rng.chance(20) {
        metadata["annotations"] = json!({"kubectl-ds.dev/sim": "notready"});
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": gen_strategy(rng),
            "template": {"metadata": metadata, "spec": spec}
        }
    })
}

/// The kinds of change a preview trial makes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ChangeKind {
    Image,
    Placement,
    Tolerations,
    Resources,
    MetadataOnly,
    Strategy,
    Rollback,
}

/// Tolerations twice: dropping one is how a node stops being tolerated (class 1 of issue 15).
const CHANGES: [ChangeKind; 8] = [
    ChangeKind::Image,
    ChangeKind::Placement,
    ChangeKind::Tolerations,
    ChangeKind::Tolerations,
    ChangeKind::Resources,
    ChangeKind::MetadataOnly,
    ChangeKind::Strategy,
    ChangeKind::Rollback,
];

/// `ds` changed by `kind` (Rollback is two steps: the caller applies an image change first).
fn change(rng: &mut Rng, ds: &Value, kind: ChangeKind, ns: &str) -> Value {
    let mut new = ds.clone();
    let spec = &mut new["spec"]["template"]["spec"];
    match kind {
        ChangeKind::Image | ChangeKind::Rollback => {
            spec["containers"][0]["image"] =
                json!(format!("registry.example/agent:{}", 2 + rng.below(90)));
        }
        ChangeKind::Placement => {
            let mut sel = json!({TEST_LABEL: ns});
            if rng.chance(40) {
                let (k, vs) = *rng.pick(&LABELS);
                sel[k] = json!(rng.pick(vs));
            }
            spec["nodeSelector"] = sel;
            if let Some(o) = spec.as_object_mut() {
                o.remove("affinity");
            }
            if rng.chance(50) {
                spec["affinity"] = gen_affinity(rng);
            }
        }
        ChangeKind::Tolerations => {
            // Removed, narrowed (one dropped) or regenerated.
            let current = spec["tolerations"].as_array().cloned().unwrap_or_default();
            spec["tolerations"] = match rng.below(3) {
                0 => json!([]),
                1 if !current.is_empty() => {
                    let mut t = current.clone();
                    t.remove(rng.below(t.len()));
                    json!(t)
                }
                _ => json!(gen_tolerations(rng)),
            };
        }
        ChangeKind::Resources => spec["containers"][0]["resources"] = gen_requests(rng),
        ChangeKind::MetadataOnly => {
            new["metadata"]["labels"] = json!({"team": format!("t{}", rng.below(9))});
            new["metadata"]["annotations"] = json!({"note": format!("n{}", rng.below(9))});
        }
        ChangeKind::Strategy => new["spec"]["updateStrategy"] = gen_strategy(rng),
    }
    new
}

// ---- observing the real cluster ----

/// One pod of the DaemonSet as seen at a point in time.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    uid: String,
    scheduled: bool,
    running: bool,
    ready: bool,
    hash: String,
}

fn target_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone() {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .filter_map(|t| t.match_fields.as_ref())
        .flatten()
        .find(|f| f.key == "metadata.name")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

fn seen(p: &Pod) -> Seen {
    let status = p.status.clone().unwrap_or_default();
    Seen {
        uid: p.metadata.uid.clone().unwrap_or_default(),
        scheduled: p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
        running: status.phase.as_deref() == Some("Running"),
        ready: status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        hash: p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("controller-revision-hash").cloned())
            .unwrap_or_default(),
    }
}

/// The DaemonSet's pods per node (terminating ones left out), and whether any is terminating.
async fn pods_by_node(env: &TestEnv) -> (BTreeMap<String, Vec<Seen>>, bool) {
    let pods = env.pods("agent").await;
    let terminating = pods.iter().any(|p| p.metadata.deletion_timestamp.is_some());
    let mut out: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if let Some(node) = target_node(p) {
            out.entry(node).or_default().push(seen(p));
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
    }
    (out, terminating)
}

/// Waits until the controller has observed the latest generation, no pod is terminating and
/// the pods have not changed for `STABLE` (a stalled rollout settles too).
async fn settle(env: &TestEnv, seed: u64) -> BTreeMap<String, Vec<Seen>> {
    const STABLE: Duration = Duration::from_secs(4);
    let api = env.ds_api();
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut last: Option<(BTreeMap<String, Vec<Seen>>, Instant)> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the DaemonSet in {} never settled",
            env.ns
        );
        let ds = api.get("agent").await.expect("get daemonset");
        let observed =
            ds.metadata.generation == ds.status.as_ref().and_then(|s| s.observed_generation);
        let (pods, terminating) = pods_by_node(env).await;
        if !observed || terminating {
            last = None;
        } else {
            match &last {
                Some((prev, since)) if *prev == pods => {
                    if since.elapsed() >= STABLE {
                        return pods;
                    }
                }
                _ => last = Some((pods, Instant::now())),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn revision_names(env: &TestEnv) -> BTreeSet<String> {
    Api::<ControllerRevision>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .expect("list revisions")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect()
}

/// Runs the real kubectl (server-side apply, as an operator would) off the async threads.
async fn apply(manifest: &Value) {
    let text = serde_json::to_string_pretty(manifest).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(f.path())
            .output()
            .expect("run kubectl");
        Output::from(out)
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "kubectl apply: {}", out.stderr);
}

/// Runs kubectl-ds with `args` in the trial's namespace off the async threads.
async fn kds(env: &TestEnv, args: Vec<String>) -> Output {
    let ns = env.ns.clone();
    tokio::task::spawn_blocking(move || {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["-n", &ns]);
        crate::harness::run_cli(&all)
    })
    .await
    .unwrap()
}

// ---- results ----

#[derive(Default)]
struct Tally {
    trials: usize,
    nodes: usize,
    order_dependent: usize,
    /// Nodes compared per observed outcome (explain: the pod's state; preview: the action).
    outcomes: BTreeMap<String, usize>,
    disagreements: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.trials += o.trials;
        self.nodes += o.nodes;
        self.order_dependent += o.order_dependent;
        for (k, v) in o.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.disagreements.extend(o.disagreements);
    }
}

fn describe_cluster(nodes: &[NodeGen]) -> String {
    let mut s = String::new();
    for n in nodes {
        let _ = writeln!(
            s,
            "    {}: labels {:?} taints {} cpu {} pods {} cordoned {} notReady {} hog {:?}",
            n.suffix,
            n.labels,
            serde_json::to_string(&n.taints).unwrap(),
            n.cpu,
            n.pods,
            n.unschedulable,
            n.not_ready,
            n.hog
        );
    }
    s
}

fn template_text(ds: &Value) -> String {
    let mut t = ds["spec"].clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("selector");
    }
    serde_json::to_string(&t).unwrap()
}

async fn run_trials<F, Fut>(mode: &str, trial: F)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let cfg = config();
    let version = crate::harness::client()
        .await
        .apiserver_version()
        .await
        .expect("read /version");
    let minor: u32 = version
        .minor
        .trim_end_matches('+')
        .parse()
        .expect("server minor version");
    let _ = SURGE_SERVED.set(minor >= 22);
    println!(
        "difftest {mode}: server {} (maxSurge {})",
        version.git_version,
        if minor >= 22 {
            "generated"
        } else {
            "not served: not generated"
        }
    );
    let trial = Arc::new(trial);
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.parallel));
    let mut handles = Vec::new();
    for i in 0..cfg.trials {
        let seed = cfg.seed.wrapping_add(i);
        let (trial, sem) = (trial.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            (*trial)(seed).await
        }));
    }
    let mut total = Tally::default();
    for h in handles {
        total.add(h.await.expect("trial panicked"));
    }
    println!(
        "difftest {mode}: seed {} trials {} nodes compared {} order-dependent {} disagreements {} (observed: {:?})",
        cfg.seed,
        total.trials,
        total.nodes,
        total.order_dependent,
        total.disagreements.len(),
        total.outcomes
    );
    for d in &total.disagreements {
        println!("{d}");
    }
    assert!(
        total.disagreements.is_empty(),
        "difftest {mode}: {} disagreement(s):\n{}",
        total.disagreements.len(),
        total.disagreements.join("\n")
    );
}

// ---- explain mode ----

/// What the controllers did on a node, in explain's terms.
fn observed_state(pods: Option<&Vec<Seen>>) -> &'static str {
    match pods.and_then(|v| v.first()) {
        None => "no pod",
        Some(s) if !s.scheduled => "pending",
        Some(s) if !s.running => "bound not running",
        Some(s) if !s.ready => "running not ready",
        Some(_) => "ready",
    }
}

/// explain's states each observation allows.
fn explain_agrees(observed: &str, state: &str, should_run: bool) -> bool {
    match observed {
        "no pod" => state == "NotEligible" && !should_run,
        "pending" => state == "Pending" && should_run,
        // Bound but not Ready, running or not yet: explain's Unhealthy.
        "bound not running" | "running not ready" => state == "Unhealthy" && should_run,
        _ => state == "Running" && should_run,
    }
}

async fn explain_trial(seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let mut env = TestEnv::new("dt-explain").await;
    ensure_priority_classes(&env).await;
    let nodes = gen_nodes(&mut rng);
    let names = build_cluster(&mut env, &nodes).await;
    let ds = gen_daemon_set(&mut rng, &env.ns, true);
    apply(&ds).await;
    let pods = settle(&env, seed).await;
    let sel = format!("{TEST_LABEL}={}", env.ns);
    let out = kds(
        &env,
        ["explain", "agent", "-o", "json", "-l", &sel]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let mut tally = Tally {
        trials: 1,
        ..Default::default()
    };
    if out.code != 0 {
        tally.disagreements.push(format!(
            "seed {seed}: explain failed ({}): {}\n  template {}\n  cluster:\n{}",
            out.code,
            out.stderr,
            template_text(&ds),
            describe_cluster(&nodes)
        ));
        return tally;
    }
    let doc: Value = serde_json::from_str(&out.stdout).expect("explain JSON");
    for (gen, name) in nodes.iter().zip(&names) {
        let verdict = doc["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == name.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let state = verdict["state"].as_str().unwrap_or("(absent)");
        let should_run = verdict["shouldRun"].as_bool().unwrap_or(false);
        let observed = observed_state(pods.get(name));
        tally.nodes += 1;
        *tally.outcomes.entry(observed.to_string()).or_default() += 1;
        if !explain_agrees(observed, state, should_run) {
            tally.disagreements.push(format!(
                "seed {seed}: explain node {} ({}): explain says {state} (shouldRun {should_run}), the controllers did: {observed}\n  reasons {}\n  template {}\n  cluster:\n{}",
                gen.suffix,
                name,
                verdict["reasons"],
                template_text(&ds),
                describe_cluster(&nodes)
            ));
        }
    }
    tally
}

// ---- preview mode ----

/// What happened on a node between two settled states, in rollout-preview's terms: a new pod
/// left unscheduled (Blocked), none before or after (Unchanged), a pod created (Create), the
/// pods gone (Delete), a pod from before still there and no new one running (Keep: a pod that
/// was Pending and still is counts as kept too; an extra surge pod the controller removed as
/// well), or a new pod running instead (Restart).
fn observed_action(before: Option<&Vec<Seen>>, after: Option<&Vec<Seen>>) -> &'static str {
    let before: &[Seen] = before.map(Vec::as_slice).unwrap_or(&[]);
    let after: &[Seen] = after.map(Vec::as_slice).unwrap_or(&[]);
    let is_new = |a: &&Seen| !before.iter().any(|b| b.uid == a.uid);
    let new: Vec<&Seen> = after.iter().filter(is_new).collect();
    let kept = after.len() > new.len();
    if new.iter().any(|s| !s.scheduled) {
        return "Blocked";
    }
    match (before.is_empty(), after.is_empty()) {
        (true, true) => "Unchanged",
        (true, false) => "Create",
        (false, true) => "Delete",
        _ if new.is_empty() && kept => "Keep",
        _ => "Restart",
    }
}

/// A reason that keeps the new pod off a node that should run it.
fn is_misfit(code: &str) -> bool {
    matches!(
        code,
        "InsufficientResources" | "HostPortConflict" | "TooManyPods"
    )
}

/// Does the preview's own plan say the rolling update stalls (Blocked desired nodes, plus the
/// pods unavailable now, use up the budget)? Then which nodes it reached first is random.
fn is_stalled(p: &Value) -> bool {
    let s = &p["strategy"];
    if s["type"] == "OnDelete" {
        return false;
    }
    // With surge only nodes with an old pod hold the budget (a new pod beside it); without,
    // every desired node without an available pod does.
    let surge = s["surge"] == true;
    let stuck = p["nodes"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .filter(|n| n["action"] == "Blocked")
                .map(codes)
                .filter(|c| c.iter().any(|c| is_misfit(c)))
                .filter(|c| !surge || c.iter().any(|c| c == "OutdatedRevision"))
                .count()
        })
        .unwrap_or(0);
    let budget = if surge {
        s["maxSurge"].as_u64()
    } else {
        s["maxUnavailable"].as_u64()
    }
    .unwrap_or(1) as usize;
    stuck > 0 && stuck + s["unavailableNow"].as_u64().unwrap_or(0) as usize >= budget
}

fn codes(node: &Value) -> Vec<String> {
    node["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the observation agrees with the prediction: Some(true) exactly, Some(false) only as
/// an order-dependent outcome of a stalled rollout, None not at all.
fn preview_agrees(
    predicted: &str,
    observed: &str,
    node: &Value,
    p: &Value,
    notes: &[String],
) -> Option<bool> {
    if predicted == observed {
        return Some(true);
    }
    let rolled_by_update = codes(node).iter().any(|c| c == "OutdatedRevision");
    let stalled = is_stalled(p);
    let surge_random = notes
        .iter()
        .any(|n| n.contains("the controller's random choice") && n.contains("stay while"));
    let order_dependent = rolled_by_update
        && observed == "Keep"
        && ((stalled && matches!(predicted, "Restart" | "Blocked" | "Delete"))
            || (surge_random && predicted == "Delete"));
    // A Blocked prediction on a node that should not run: the outdated pod is held (surge).
    let held = predicted == "Blocked"
        && observed == "Keep"
        && rolled_by_update
        && !codes(node).iter().any(|c| is_misfit(c));
    if held {
        return Some(true);
    }
    order_dependent.then_some(false)
}

async fn preview_trial(seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let mut env = TestEnv::new("dt-preview").await;
    ensure_priority_classes(&env).await;
    let nodes = gen_nodes(&mut rng);
    let names = build_cluster(&mut env, &nodes).await;
    let v0 = gen_daemon_set(&mut rng, &env.ns, false);
    apply(&v0).await;
    settle(&env, seed).await;
    let kind = *rng.pick(&CHANGES);
    let (old, new) = if kind == ChangeKind::Rollback {
        let v1 = change(&mut rng, &v0, ChangeKind::Image, &env.ns);
        apply(&v1).await;
        settle(&env, seed).await;
        (v1, v0)
    } else {
        let v1 = change(&mut rng, &v0, kind, &env.ns);
        (v0, v1)
    };
    let before = settle(&env, seed).await;
    let revs_before = revision_names(&env).await;
    let text = serde_json::to_string_pretty(&new).unwrap();
    let file = tokio::task::spawn_blocking(move || {
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    })
    .await
    .unwrap();
    let out = kds(
        &env,
        vec![
            "rollout-preview".into(),
            "agent".into(),
            "-f".into(),
            file.path().display().to_string(),
            "-o".into(),
            "json".into(),
        ],
    )
    .await;
    let context = |what: String| {
        format!(
            "seed {seed}: preview ({kind:?}) {what}\n  template before {}\n  template after  {}\n  cluster:\n{}",
            template_text(&old),
            template_text(&new),
            describe_cluster(&nodes)
        )
    };
    let mut tally = Tally {
        trials: 1,
        ..Default::default()
    };
    if out.code != 0 {
        tally
            .disagreements
            .push(context(format!("failed ({}): {}", out.code, out.stderr)));
        return tally;
    }
    let p: Value = serde_json::from_str(&out.stdout).expect("preview JSON");
    apply(&new).await;
    let after = settle(&env, seed).await;
    let revs_after = revision_names(&env).await;
    let notes: Vec<String> = p["notes"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let new_revision = revs_after.difference(&revs_before).next().is_some();
    let template_changed = p["templateChanged"].as_bool().unwrap_or(false);
    let expect_new_revision = template_changed && p["matchingRevision"].is_null();
    if new_revision != expect_new_revision {
        tally.disagreements.push(context(format!(
            "templateChanged {template_changed}, matchingRevision {}, but a new ControllerRevision appeared: {new_revision}",
            p["matchingRevision"]
        )));
    }
    for (gen, name) in nodes.iter().zip(&names) {
        let node = p["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == name.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let predicted = node["action"].as_str().unwrap_or("(absent)");
        let observed = observed_action(before.get(name), after.get(name));
        tally.nodes += 1;
        *tally.outcomes.entry(observed.to_string()).or_default() += 1;
        match preview_agrees(predicted, observed, &node, &p, &notes) {
            Some(true) => {}
            Some(false) => tally.order_dependent += 1,
            None => tally.disagreements.push(context(format!(
                "node {} ({name}): predicted {predicted}, the controller did: {observed}\n  reasons {}\n  notes {notes:?}\n  pods before {:?}\n  pods after {:?}",
                gen.suffix,
                node["reasons"],
                before.get(name),
                after.get(name)
            ))),
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explain_agrees_with_the_controllers_on_random_clusters() {
    run_trials("explain", explain_trial).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollout_preview_agrees_with_the_controller_on_random_changes() {
    run_trials("preview", preview_trial).await;
}
