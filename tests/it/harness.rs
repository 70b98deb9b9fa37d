//! The end-to-end harness: one dev cluster per test run (or the one named by KDS_TEST_CLUSTER),
//! a namespace and labelled simulated nodes per test, cleaned up on drop.
//!
//! Every DaemonSet a test creates selects only that test's nodes (`kds-test: <namespace>`), so
//! tests run in parallel on one cluster without seeing each other's pods.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};

pub const TEST_LABEL: &str = "kds-test";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig of the shared test cluster, starting one if needed.
pub fn kubeconfig() -> &'static PathBuf {
    static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
    KUBECONFIG.get_or_init(|| {
        let script = repo_root().join("scripts/dev-cluster");
        if let Ok(name) = std::env::var("KDS_TEST_CLUSTER") {
            let out = Command::new(&script).args(["kubeconfig", &name]).output().expect("run dev-cluster");
            assert!(out.status.success(), "KDS_TEST_CLUSTER={name} is not running: {}", String::from_utf8_lossy(&out.stderr));
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
        let name = format!("kds-it-{}", std::process::id());
        let out = Command::new(&script).args(["up", &name]).output().expect("run dev-cluster up");
        assert!(out.status.success(), "dev-cluster up failed: {}", String::from_utf8_lossy(&out.stderr));
        // A watchdog stops the cluster when this test process exits (libtest has no teardown).
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{script}' down {name} >/dev/null 2>&1",
            pid = std::process::id(),
            script = script.display()
        );
        // The watchdog outlives this process on purpose: it is never waited for.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("bash")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watchdog");
        let out = Command::new(&script).args(["kubeconfig", &name]).output().expect("kubeconfig");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

pub async fn client() -> Client {
    let kc = Kubeconfig::read_from(kubeconfig()).expect("read kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(cfg).expect("client")
}

/// A test's own namespace and nodes.
pub struct TestEnv {
    pub client: Client,
    pub ns: String,
    nodes: Vec<String>,
}

/// How to make a simulated node.
#[derive(Default, Clone)]
pub struct NodeSpec {
    pub labels: Vec<(&'static str, &'static str)>,
    pub taints: Vec<Value>,
    pub cpu: Option<&'static str>,
    pub pods: Option<&'static str>,
    pub unschedulable: bool,
    pub not_ready: bool,
    pub memory_pressure: bool,
}

impl TestEnv {
    pub async fn new(test: &str) -> TestEnv {
        let client = client().await;
        let ns = format!("{}-{}", test.replace('_', "-"), unique() % 1_000_000);
        let api: Api<Namespace> = Api::all(client.clone());
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create namespace");
        wait_for(
            Duration::from_secs(30),
            "default service account",
            || async {
                let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
                    Api::namespaced(client.clone(), &ns);
                sa.get_opt("default").await.ok().flatten().is_some()
            },
        )
        .await;
        TestEnv {
            client,
            ns,
            nodes: Vec::new(),
        }
    }

    /// Creates a simulated node `<ns>-<suffix>` labelled for this test.
    pub async fn node(&mut self, suffix: &str, spec: NodeSpec) -> String {
        let labels: Vec<(String, String)> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.node_with_labels(suffix, &labels, spec).await
    }

    /// [`TestEnv::node`] with labels known only at run time (the differential tester's).
    pub async fn node_with_labels(
        &mut self,
        suffix: &str,
        extra_labels: &[(String, String)],
        spec: NodeSpec,
    ) -> String {
        let name = format!("{}-{suffix}", self.ns);
        let mut labels = json!({TEST_LABEL: self.ns, "kubernetes.io/hostname": name});
        for (k, v) in extra_labels {
            labels[k.as_str()] = json!(v);
        }
        let mut annotations = json!({"kwok.x-k8s.io/node": "fake"});
        if spec.not_ready {
            annotations["kubectl-ds.dev/sim-node"] = json!("notready");
        }
        if spec.memory_pressure {
            annotations["kubectl-ds.dev/sim-node"] = json!("memorypressure");
        }
        let cpu = spec.cpu.unwrap_or("32");
        let pods = spec.pods.unwrap_or("110");
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"taints": spec.taints, "unschedulable": spec.unschedulable},
            "status": {
                "allocatable": {"cpu": cpu, "memory": "64Gi", "pods": pods},
                "capacity": {"cpu": cpu, "memory": "64Gi", "pods": pods}
            }
        }))
        .unwrap();
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        self.nodes.push(name.clone());
        if !spec.not_ready {
            let c = self.client.clone();
            let n = name.clone();
            wait_for(Duration::from_secs(30), "node Ready", || async {
                node_ready(&c, &n).await == Some(true)
            })
            .await;
        }
        name
    }

    /// A DaemonSet manifest selecting this test's nodes; `extra` is merged into the template spec.
    pub fn daemon_set(&self, name: &str, template_spec: Value) -> Value {
        let mut spec = json!({
            "nodeSelector": {TEST_LABEL: self.ns},
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "agent", "image": "registry.example/agent:1"}]
        });
        merge(&mut spec, template_spec);
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
            }
        })
    }

    pub async fn create_ds(&self, manifest: Value) -> DaemonSet {
        let ds: DaemonSet = serde_json::from_value(manifest).unwrap();
        self.ds_api()
            .create(&PostParams::default(), &ds)
            .await
            .expect("create daemonset")
    }

    pub fn ds_api(&self) -> Api<DaemonSet> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn patch_node(&self, name: &str, patch: Value) {
        Api::<Node>::all(self.client.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch node");
    }

    /// Pods of the DaemonSet `app=<name>`.
    pub async fn pods(&self, app: &str) -> Vec<Pod> {
        self.pod_api()
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods")
            .items
    }

    /// Waits until the DaemonSet's status shows `desired` pods, all ready and up to date.
    pub async fn wait_rolled_out(&self, name: &str, desired: i32) {
        let api = self.ds_api();
        wait_for(
            Duration::from_secs(90),
            &format!("daemonset {name} rolled out to {desired}"),
            || async {
                let Ok(ds) = api.get(name).await else {
                    return false;
                };
                let st = ds.status.unwrap_or_default();
                ds.metadata.generation == st.observed_generation
                    && st.desired_number_scheduled == desired
                    && st.number_ready == desired
                    && st.updated_number_scheduled == Some(desired)
                    && st.number_available == Some(desired)
            },
        )
        .await;
    }

    /// Runs the kubectl-ds binary against the test cluster in this namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-n", &self.ns]);
        run_cli(&all)
    }

    /// `explain NAME -o json -l kds-test=<ns>` parsed.
    pub fn explain_json(&self, name: &str) -> Value {
        let sel = format!("{TEST_LABEL}={}", self.ns);
        let out = self.run(&["explain", name, "-o", "json", "-l", &sel]);
        assert_eq!(out.code, 0, "explain failed: {}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("explain JSON: {e}\n{}", out.stdout))
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let kc = kubeconfig().display().to_string();
        let _ = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &kc,
                "delete",
                "namespace",
                &self.ns,
                "--wait=false",
            ])
            .output();
        if !self.nodes.is_empty() {
            let mut args = vec![
                "--kubeconfig".to_string(),
                kc,
                "delete".into(),
                "node".into(),
                "--wait=false".into(),
            ];
            args.extend(self.nodes.iter().cloned());
            let _ = Command::new("kubectl").args(&args).output();
        }
    }
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    /// Exit code (-1 when killed by a signal) and the streams as text.
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The one command builder of the end-to-end tests: the kubectl-ds binary with `args`, the
/// test cluster's kubeconfig, no colour, no failpoint, stdin closed.
pub fn kubectl_ds(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-ds"));
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig())
        .env("NO_COLOR", "1")
        .env_remove("KUBECTL_DS_FAILPOINT")
        .stdin(Stdio::null());
    cmd
}

/// Runs the kubectl-ds binary with the test cluster's kubeconfig.
pub fn run_cli(args: &[&str]) -> Output {
    let out = kubectl_ds(args).output().expect("run kubectl-ds");
    Output::from(out)
}

/// [`kubectl_ds`] in the test's namespace, run in `dir` (where relative backup paths land),
/// with extra environment `vars` (a failpoint, a fake clock).
pub fn command(env: &TestEnv, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = kubectl_ds(args);
    cmd.args(["-n", &env.ns]).current_dir(dir);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs [`command`] to the end.
pub fn cli(env: &TestEnv, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let out = command(env, dir, args, vars)
        .output()
        .expect("run kubectl-ds");
    Output::from(out)
}

/// Starts [`command`] in the background, its output discarded.
pub fn spawn(env: &TestEnv, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Child {
    command(env, dir, args, vars)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl-ds")
}

pub async fn node_ready(client: &Client, name: &str) -> Option<bool> {
    let node = Api::<Node>::all(client.clone()).get(name).await.ok()?;
    let conds = node.status?.conditions?;
    conds
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True")
}

/// The test cluster's Kubernetes version: (minor, gitVersion), from `/version`.
pub async fn server_version(client: &Client) -> (u32, String) {
    let info = client.apiserver_version().await.expect("GET /version");
    let minor: String = info
        .minor
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (minor.parse().expect("numeric minor"), info.git_version)
}

/// Polls `cond` every 250 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

#[allow(dead_code)]
pub async fn delete_pod(env: &TestEnv, name: &str) {
    let _ = env.pod_api().delete(name, &DeleteParams::default()).await;
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    t.wrapping_add(N.fetch_add(7919, Ordering::Relaxed))
}

/// The verdict of one node in an explain JSON.
pub fn node_verdict<'a>(explanation: &'a Value, node: &str) -> &'a Value {
    explanation["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["name"] == node))
        .unwrap_or_else(|| panic!("node {node} not in explanation: {explanation:#}"))
}

/// The reason codes of a node verdict.
pub fn codes(verdict: &Value) -> Vec<String> {
    verdict["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
