//! Bad input to orphan, adopt and migrate on the real control plane: one `error:` line, the
//! documented exit code, nothing changed; and RBAC that allows too little.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::{kubeconfig, wait_for, TestEnv};
use crate::workflow_support::*;

/// Creates RBAC objects with kubectl (admin kubeconfig) and deletes the cluster-scoped ones on drop.
struct Rbac {
    cluster_objects: Vec<String>,
}

impl Rbac {
    fn apply(&mut self, yaml: &str) {
        let mut child = Command::new("kubectl")
            .args([
                "--kubeconfig",
                kubeconfig().to_str().unwrap(),
                "apply",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Rbac {
    fn drop(&mut self) {
        for o in &self.cluster_objects {
            let _ = Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    kubeconfig().to_str().unwrap(),
                    "delete",
                    o,
                    "--wait=false",
                ])
                .output();
        }
    }
}

fn role(ns: &str, ds_verbs: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: kds-tester, namespace: {ns}}}
rules:
- {{apiGroups: [apps], resources: [daemonsets], verbs: [{ds_verbs}]}}
- {{apiGroups: [apps], resources: [controllerrevisions], verbs: [get, list]}}
- {{apiGroups: [''], resources: [pods], verbs: [get, list]}}
- {{apiGroups: [apps], resources: [replicasets, statefulsets], verbs: [list]}}
- {{apiGroups: [''], resources: [replicationcontrollers], verbs: [list]}}
- {{apiGroups: [batch], resources: [jobs], verbs: [list]}}
- {{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update, delete]}}
"
    )
}

#[tokio::test]
async fn bad_input_is_refused_with_one_line_and_changes_nothing() {
    let mut env = TestEnv::new("wf-bad").await;
    nodes(&mut env, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let before = start_old(&env, "agent", "agent", 2).await;
    let old_uid = get_ds(&env, "agent").await.unwrap().metadata.uid.unwrap();
    let backup = dir.path().join("backup.yaml");
    let backup_s = backup.to_str().unwrap().to_string();
    let good = new_manifest(&env, "node-agent", "agent");

    let mut deployment = good.clone();
    deployment["kind"] = json!("Deployment");
    let mut mismatch = good.clone();
    mismatch["spec"]["selector"] = json!({"matchLabels": {"component": "something-else"}});
    let wrong_kind = write(dir.path(), "deployment.yaml", &deployment);
    let bad_selector = write(dir.path(), "mismatch.yaml", &mismatch);
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x\nspec: [",
    )
    .unwrap();

    for (path, code, text) in [
        (wrong_kind.as_path(), 2, "expected kind DaemonSet"),
        (invalid.as_path(), 2, "not valid YAML"),
        (
            bad_selector.as_path(),
            2,
            "does not match the template's labels",
        ),
        (Path::new("/nonexistent/new.yaml"), 2, "reading"),
    ] {
        for cmd in ["migrate", "adopt"] {
            let mut args = vec![cmd];
            if cmd == "migrate" {
                args.push("agent");
            }
            args.extend(["-f", path.to_str().unwrap(), "--backup", &backup_s, "--yes"]);
            if cmd == "adopt" {
                args.retain(|a| *a != "--backup" && *a != backup_s.as_str());
            }
            let out = cli(&env, dir.path(), &args, &[]);
            assert_eq!(out.code, code, "{cmd} {}: {}", path.display(), out.stderr);
            assert!(one_error_line(&out).contains(text), "{cmd}: {}", out.stderr);
        }
    }

    // A DaemonSet of the new name exists already (selecting nothing of ours).
    let mut taken = env.daemon_set("node-agent", json!({}));
    taken["spec"]["selector"] = json!({"matchLabels": {"app": "taken"}});
    taken["spec"]["template"]["metadata"]["labels"] = json!({"app": "taken"});
    env.create_ds(taken).await;
    let good_path = write(dir.path(), "good.yaml", &good);
    let good_path = good_path.to_str().unwrap();
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate", "agent", "-f", good_path, "--backup", &backup_s, "--yes",
        ],
        &[],
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(one_error_line(&out).contains("NameTaken"), "{}", out.stderr);
    let out = cli(&env, dir.path(), &["adopt", "-f", good_path, "--yes"], &[]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    // The old name does not exist: not found, with nothing to resume from.
    let out = cli(
        &env,
        dir.path(),
        &[
            "migrate", "nope", "-f", good_path, "--backup", &backup_s, "--yes",
        ],
        &[],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    one_error_line(&out);
    env.ds_api()
        .delete("node-agent", &Default::default())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the squatter to be gone",
        || async { get_ds(&env, "node-agent").await.is_none() },
    )
    .await;
    assert!(!backup.exists());
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;

    // RBAC: a user who may delete DaemonSets but not create them is refused before the delete.
    let user = format!("kds-tester-{}", env.ns);
    let nodes_role = format!("kds-nodes-{}", env.ns);
    let mut rbac = Rbac {
        cluster_objects: vec![
            format!("clusterrole/{nodes_role}"),
            format!("clusterrolebinding/{nodes_role}"),
        ],
    };
    rbac.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {nodes_role}}}
rules: [{{apiGroups: [''], resources: [nodes], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {nodes_role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {nodes_role}}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
---
{}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: kds-tester, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kds-tester}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
",
        role(&env.ns, "get, list, delete"),
        ns = env.ns
    ));
    let as_user = [
        "migrate", "agent", "-f", good_path, "--backup", &backup_s, "--yes", "--as", &user,
    ];
    let api = env.ds_api();
    wait_for(Duration::from_secs(10), "RBAC to apply", || async {
        Command::new("kubectl")
            .args([
                "--kubeconfig",
                kubeconfig().to_str().unwrap(),
                "auth",
                "can-i",
                "delete",
                "daemonsets.apps",
            ])
            .args(["-n", &env.ns, "--as", &user])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .await;
    let out = cli(&env, dir.path(), &as_user, &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    let line = one_error_line(&out);
    assert!(
        line.contains("forbidden") && line.contains("nothing was changed"),
        "{line}"
    );
    assert!(!backup.exists());
    assert_untouched(&env, "agent", "agent", &old_uid, &before).await;

    // Denied part-way: the permission to create disappears after the orphaning delete. The
    // re-run is refused in one line with the pods still running (orphaned, backup on disk);
    // once the permission is back, the same command finishes the job.
    rbac.apply(&role(&env.ns, "get, list, delete, create"));
    let out = cli(
        &env,
        dir.path(),
        &as_user,
        &[("KUBECTL_DS_FAILPOINT", "after-orphan")],
    );
    assert_eq!(out.code, FAILPOINT_EXIT, "{}", out.stderr);
    rbac.apply(&role(&env.ns, "get, list, delete"));
    let out = cli(&env, dir.path(), &as_user, &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    one_error_line(&out);
    assert!(api.get_opt("node-agent").await.unwrap().is_none());
    let now = pods_of(&env, "agent").await;
    assert_eq!(now.keys().collect::<BTreeSet<_>>(), before.keys().collect());
    assert!(backup.exists());
    rbac.apply(&role(&env.ns, "get, list, delete, create"));
    let out = cli(&env, dir.path(), &as_user, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_migrated(&env, "node-agent", "agent", &before).await;
}
