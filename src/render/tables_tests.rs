//! Snapshots (insta) of the rendered tables not covered by the CLI snapshots in
//! tests/it/output.rs: rollout-preview (table, wide, node label columns), the `explain`
//! overview, `why`, `endpoints`, `status`'s line mode and the orphan/adopt/migrate plans. Each is
//! rendered from the saved Lists in tests/fixtures through the engine (or, for documents the
//! workflows build from a live cluster, from their fields), colours off. A change shows as a
//! diff to review (`cargo insta review`, or INSTA_UPDATE=always to rewrite).

use serde_json::json;

use crate::engine::explain::{explain, NodeFilter};
use crate::engine::report::{
    AdoptPlan, MigrateReport, ObjectRef, OrphanPlan, OrphanPod, OrphanRevision, PredecessorRef,
};
use crate::engine::rollout::classify;
use crate::engine::testutil::snapshot_of_list;
use crate::render::palette::Palette;
use crate::render::printer::TableOptions;

const PREEMPTION: &str = include_str!("../../tests/fixtures/preemption.yaml");
const PRIORITY: &str = include_str!("../../tests/fixtures/fix-priority.yaml");
const RESOURCES: &str = include_str!("../../tests/fixtures/fix-resources.yaml");

fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    write(&mut out);
    let s = String::from_utf8(out).unwrap();
    assert!(!s.contains('\x1b'), "colours off: {s:?}");
    s
}

#[test]
fn rollout_preview_tables() {
    let mut snap = snapshot_of_list(PREEMPTION, "node-agent");
    snap.priorities.pdbs = Some(vec![]);
    let mut new = snap.daemon_set.clone();
    let spec = new.spec.as_mut().unwrap();
    spec.template.spec.as_mut().unwrap().containers[0].image =
        Some("registry.example/node-agent:1.5.0".into());
    new.metadata.generation = Some(2);
    new.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            "deprecated.daemonset.template.generation".into(),
            "2".into(),
        );
    let preview = classify(&snap, &new).finish_with(&snap.pods_on_nodes, &snap.priorities);
    let doc = super::rollout::Document {
        preview: &preview,
        dry_run: super::rollout::DryRun {
            method: "ServerSideApply",
            field_manager: "kubectl-ds".into(),
        },
        admission: None,
        template_diff: String::new(),
    };
    let p = Palette::new(false);
    let labels = super::explain::NodeLabels::from([(
        "small-1".to_string(),
        [
            (
                "topology.kubernetes.io/zone".to_string(),
                "eu-1a".to_string(),
            ),
            ("pool".to_string(), "small".to_string()),
        ]
        .into(),
    )]);
    let opts = TableOptions {
        no_headers: false,
        label_columns: vec!["topology.kubernetes.io/zone".into(), "nosuch".into()],
        show_labels: true,
    };
    for (name, wide, opts) in [
        ("rollout_preview_table", false, TableOptions::default()),
        ("rollout_preview_wide", true, TableOptions::default()),
        ("rollout_preview_label_columns", false, opts.clone()),
        ("rollout_preview_wide_label_columns", true, opts.clone()),
    ] {
        let t = text(|o| {
            super::rollout::preview_table_with(o, &doc, wide, &p, &opts, &labels).unwrap()
        });
        insta::assert_snapshot!(name, t);
    }
}

#[test]
fn explain_overview_table() {
    let items: Vec<_> = [
        (PREEMPTION, "node-agent"),
        (PRIORITY, "log-agent"),
        (RESOURCES, "log-agent"),
    ]
    .iter()
    .map(|(list, name)| explain(&snapshot_of_list(list, name), &NodeFilter::default()))
    .collect();
    let p = Palette::new(false);
    let all = text(|o| super::explain::overview_table_with(o, &items, true, &p, false).unwrap());
    insta::assert_snapshot!("explain_overview_all_namespaces", all);
    let bare = text(|o| super::explain::overview_table_with(o, &items, false, &p, true).unwrap());
    insta::assert_snapshot!("explain_overview_no_headers", bare);
}

#[test]
fn status_line_mode() {
    use crate::engine::status::{NodeChange, StatusSummary};
    let changes: Vec<NodeChange> = serde_json::from_value(json!([
        {"apiVersion": "kubectl-ds/v1", "kind": "NodeChange", "time": "2026-11-30T10:00:00Z",
         "node": "small-1", "from": null, "to": "Outdated", "reason": "OutdatedRevision",
         "message": "pod at revision 1, current is 2", "pod": "node-agent-7xk2p", "revision": 1},
        {"apiVersion": "kubectl-ds/v1", "kind": "NodeChange", "time": "2026-11-30T10:00:05Z",
         "node": "small-1", "from": "Outdated", "to": "Pending", "reason": "InsufficientResources",
         "message": "insufficient cpu", "pod": "node-agent-9qw2z", "revision": 2},
        {"apiVersion": "kubectl-ds/v1", "kind": "NodeChange", "time": "2026-11-30T10:00:09Z",
         "node": "small-1", "from": "Pending", "to": "Available", "reason": null,
         "message": null, "pod": "node-agent-9qw2z", "revision": 2}
    ]))
    .unwrap();
    let summary: StatusSummary = serde_json::from_value(json!({
        "apiVersion": "kubectl-ds/v1", "kind": "StatusSummary", "time": "2026-11-30T10:00:09Z",
        "namespace": "kube-system", "name": "node-agent", "outcome": "Complete",
        "elapsedSeconds": 9, "progress": {"desired": 1, "updated": 1, "available": 1, "done": 1},
        "changes": 3, "stuck": []
    }))
    .unwrap();
    let mut lines: Vec<String> = changes.iter().map(super::status::change_line).collect();
    lines.extend(super::status::summary_lines(&summary));
    insta::assert_snapshot!("status_line_mode", lines.join("\n"));
}

fn object(name: &str) -> ObjectRef {
    ObjectRef {
        namespace: "monitoring".into(),
        name: name.into(),
        uid: Some(format!("{name}-uid")),
        resource_version: Some("4711".into()),
    }
}

fn orphan_plan() -> OrphanPlan {
    OrphanPlan {
        daemon_set: object("node-exporter"),
        backup: "node-exporter.backup.yaml".into(),
        steps: vec![
            "write the backup node-exporter.backup.yaml".into(),
            "delete daemonset monitoring/node-exporter with propagationPolicy=Orphan".into(),
        ],
        pods: vec![
            OrphanPod {
                name: "node-exporter-4kq8d".into(),
                uid: "p1".into(),
                node: Some("worker-1".into()),
                ready: true,
                revision_hash: Some("6f758dfb6c".into()),
            },
            OrphanPod {
                name: "node-exporter-zz9x1".into(),
                uid: "p2".into(),
                node: None,
                ready: false,
                revision_hash: None,
            },
        ],
        revisions: vec![OrphanRevision {
            name: "node-exporter-6f758dfb6c".into(),
            uid: "r1".into(),
            revision: 3,
            hash: "6f758dfb6c".into(),
        }],
        checks: serde_json::from_value(json!([
            {"code": "OwnerOfRecord", "verdict": "warn",
             "message": "Helm release monitoring/exporters owns it", "overrideFlag": "--force"},
            {"code": "CompetingController", "verdict": "ok", "message": "no other controller selects the pods"}
        ]))
        .unwrap(),
    }
}

fn adopt_plan() -> AdoptPlan {
    AdoptPlan {
        daemon_set: object("node-exporter-v2"),
        predecessor: Some(PredecessorRef {
            name: "node-exporter".into(),
            uid: Some("node-exporter-uid".into()),
            source: "backup",
        }),
        steps: vec!["create daemonset monitoring/node-exporter-v2".into()],
        analysis: serde_json::from_value(json!({
            "pods": [
                {"name": "node-exporter-4kq8d", "uid": "p1", "node": "worker-1",
                 "revisionHash": "6f758dfb6c", "templateGeneration": "3", "fate": "Adopt",
                 "fromPredecessor": true},
                {"name": "node-exporter-b7m2c", "uid": "p3", "node": "worker-2",
                 "revisionHash": "5c4b3a2910", "fate": "Restart",
                 "detail": "its template differs from the new one", "fromPredecessor": true}
            ],
            "revisions": [{"name": "node-exporter-6f758dfb6c", "uid": "r1", "revision": 3,
                "hash": "6f758dfb6c", "matchesNewTemplate": true, "adopted": true}],
            "newNodes": ["worker-3"],
            "desired": 3,
            "templateGeneration": 3,
            "checks": [{"code": "NameTaken", "verdict": "ok", "message": "no daemonset node-exporter-v2 yet"}]
        }))
        .unwrap(),
    }
}

#[test]
fn workflow_plan_tables() {
    let p = Palette::new(false);
    let orphan = text(|o| super::workflow::orphan_plan(o, &orphan_plan(), &p).unwrap());
    insta::assert_snapshot!("orphan_plan", orphan);
    let adopt = text(|o| super::workflow::adopt_plan(o, &adopt_plan(), &p).unwrap());
    insta::assert_snapshot!("adopt_plan", adopt);
    let migrate = MigrateReport {
        api_version: "kubectl-ds/v1",
        kind: "MigrateReport",
        dry_run: "none",
        stage: crate::engine::progress::Stage::Start,
        backup: "node-exporter.backup.yaml".into(),
        orphan: Some(orphan_plan()),
        adopt: adopt_plan(),
        server_dry_run: vec![],
        result: None,
    };
    let migrate = text(|o| super::workflow::migrate_plan(o, &migrate, &p).unwrap());
    insta::assert_snapshot!("migrate_plan", migrate);
}
