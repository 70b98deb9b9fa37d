//! DaemonSet manifests for the workflows: the new manifest read and validated, the old object
//! cleaned for re-apply, the backup file with its journal, and the marker kubectl-ds leaves on a
//! DaemonSet it created (so an interrupted run can recognise its own work).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::labels;
use super::revision::{normalise, TEMPLATE_GENERATION_ANNOTATION};

/// Set on a DaemonSet kubectl-ds created by `adopt`/`migrate`: `<old name>/<old uid>`, or
/// `orphans` when adopted without knowing the predecessor.
pub const ADOPTED_FROM_ANNOTATION: &str = "kubectl-ds.dev/adopted-from";

/// The prefix of the backup file's journal line (a YAML comment, ignored by kubectl apply).
pub const JOURNAL_PREFIX: &str = "# kubectl-ds-journal: ";

/// Finalizers the apiserver adds while deleting; a backup must not carry them.
const DELETION_FINALIZERS: [&str; 2] = ["orphan", "foregroundDeletion"];

/// Reads a manifest (by the rules of `documents`: YAML or JSON, several documents, Lists) that
/// must hold exactly one object, an apps/v1 DaemonSet, and validates what the
/// apiserver would reject (mirrors apps validation ValidateDaemonSetSpec: a non-empty selector
/// that matches the template's labels). Server-set fields are dropped so it can be created.
pub fn parse_new_daemon_set(text: &str) -> Result<DaemonSet, String> {
    let docs = super::documents::parse_objects(text, "a DaemonSet object")?;
    let doc = match docs.as_slice() {
        [one] => one.clone(),
        [] => return Err("the file holds no object; expected one DaemonSet".into()),
        _ => {
            return Err(format!(
                "the file holds {} objects; expected exactly one DaemonSet",
                docs.len()
            ))
        }
    };
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind != "DaemonSet" {
        let got = if kind.is_empty() { "no kind" } else { kind };
        return Err(format!("expected kind DaemonSet (apps/v1), got {got}"));
    }
    if api_version != "apps/v1" {
        return Err(format!(
            "expected apiVersion apps/v1 for a DaemonSet, got {api_version:?}"
        ));
    }
    let ds: DaemonSet =
        serde_json::from_value(doc).map_err(|e| format!("not a valid DaemonSet: {e}"))?;
    validate(&ds)?;
    Ok(clean_for_reapply(&ds))
}

/// The checks of the apiserver's validation that decide whether adoption can work at all.
fn validate(ds: &DaemonSet) -> Result<(), String> {
    let name = ds.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        return Err("metadata.name is required (generateName is not supported)".into());
    }
    let spec = ds
        .spec
        .as_ref()
        .ok_or_else(|| format!("daemonset {name:?} has no spec"))?;
    let sel = labels::from_label_selector(Some(&spec.selector))
        .map_err(|e| format!("spec.selector: {e}"))?;
    if sel.is_everything() {
        return Err(
            "spec.selector is empty: a DaemonSet needs a non-empty selector to adopt pods".into(),
        );
    }
    if !sel.matches(
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref()),
    ) {
        return Err(format!(
            "spec.selector ({}) does not match the template's labels ({})",
            selector_text(&spec.selector),
            label_text(
                spec.template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.as_ref())
            )
        ));
    }
    Ok(())
}

/// A selector in the `-l` syntax the apiserver accepts: list requests and messages.
pub fn selector_text(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({vals})", e.key),
            "NotIn" => format!("{} notin ({vals})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Labels as `a=b,c=d`, for messages.
pub fn label_text(labels: Option<&BTreeMap<String, String>>) -> String {
    let text: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if text.is_empty() {
        "none".into()
    } else {
        text.join(",")
    }
}

/// The object as `kubectl apply -f` accepts it again: no status and no server-set metadata
/// (uid, resourceVersion, creationTimestamp, generation, managedFields, ownerReferences,
/// deletion fields and finalizers). Labels and annotations stay, including
/// `deprecated.daemonset.template.generation`.
pub fn clean_for_reapply(ds: &DaemonSet) -> DaemonSet {
    let m = &ds.metadata;
    let finalizers: Vec<String> = m
        .finalizers
        .iter()
        .flatten()
        .filter(|f| !DELETION_FINALIZERS.contains(&f.as_str()))
        .cloned()
        .collect();
    DaemonSet {
        metadata: ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            finalizers: (!finalizers.is_empty()).then_some(finalizers),
            ..ObjectMeta::default()
        },
        spec: ds.spec.clone(),
        status: None,
    }
}

/// The manifest to create: the marker, and the template generation decided by the checks.
pub fn prepare_for_create(manifest: &DaemonSet, adopted_from: &str, generation: i64) -> DaemonSet {
    let mut ds = manifest.clone();
    let ann = ds.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(ADOPTED_FROM_ANNOTATION.into(), adopted_from.into());
    ann.insert(
        TEMPLATE_GENERATION_ANNOTATION.into(),
        generation.to_string(),
    );
    ds
}

/// The marker value for a predecessor.
pub fn adopted_from_value(name: &str, uid: Option<&str>) -> String {
    match uid {
        Some(uid) if !uid.is_empty() => format!("{name}/{uid}"),
        _ => name.to_string(),
    }
}

/// Is `existing` the DaemonSet an earlier run created from this manifest? It carries the
/// marker (equal to `marker` when given), its selector is the manifest's, and every field the
/// manifest sets in the template is set to the same value (the apiserver adds defaults).
pub fn is_created_from(existing: &DaemonSet, manifest: &DaemonSet, marker: Option<&str>) -> bool {
    let found = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADOPTED_FROM_ANNOTATION));
    let marker_ok = match (found, marker) {
        (None, _) => false,
        (Some(f), Some(want)) => f == want,
        (Some(_), None) => true,
    };
    let (Some(e), Some(m)) = (existing.spec.as_ref(), manifest.spec.as_ref()) else {
        return false;
    };
    let sel = |s: &LabelSelector| normalise(serde_json::to_value(s).unwrap_or(Value::Null));
    let tmpl = |d: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        normalise(serde_json::to_value(d).unwrap_or(Value::Null))
    };
    marker_ok
        && sel(&e.selector) == sel(&m.selector)
        && is_subset(&tmpl(&m.template), &tmpl(&e.template))
}

/// Is every field set in `small` set to the same value in `big`? Arrays compare element-wise.
pub fn is_subset(small: &Value, big: &Value) -> bool {
    match (small, big) {
        (Value::Object(s), Value::Object(b)) => s
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| is_subset(v, bv))),
        (Value::Array(s), Value::Array(b)) => {
            s.len() == b.len() && s.iter().zip(b).all(|(x, y)| is_subset(x, y))
        }
        (s, b) => s == b,
    }
}

/// What the backup file remembers about the DaemonSet it holds: enough to resume a migration
/// and to tell later which pods were its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// RFC 3339, when the backup was written.
    pub written_at: String,
    pub pods: Vec<ObjectRecord>,
    pub revisions: Vec<ObjectRecord>,
}

/// A pod or ControllerRevision the DaemonSet controlled when the backup was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRecord {
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Metadata the apiserver sets or that only describes this incarnation of the object: a
/// backup drops it so that `kubectl apply -f` / create accepts the file again.
const SERVER_SET_METADATA: [&str; 9] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
];

/// The object exactly as the apiserver sent it (JSON), minus `status` and the server-set
/// metadata of [`SERVER_SET_METADATA`] and the deletion finalizers: every other field stays,
/// including fields this build's k8s-openapi does not model (newer or alpha API fields), which
/// a round trip through the typed [`DaemonSet`] would drop. The raw-JSON counterpart of
/// [`clean_for_reapply`].
pub fn clean_raw_for_reapply(raw: &Value) -> Value {
    let mut v = raw.clone();
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    obj.remove("status");
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in SERVER_SET_METADATA {
            meta.remove(k);
        }
        let kept: Option<Vec<Value>> = meta.get("finalizers").and_then(Value::as_array).map(|f| {
            f.iter()
                .filter(|x| !x.as_str().is_some_and(|x| DELETION_FINALIZERS.contains(&x)))
                .cloned()
                .collect()
        });
        match kept {
            Some(k) if !k.is_empty() => {
                meta.insert("finalizers".into(), Value::Array(k));
            }
            _ => {
                meta.remove("finalizers");
            }
        }
    }
    v
}

/// The backup file: a comment header with the journal, then the object as the apiserver sent
/// it (`raw`), cleaned for re-apply by [`clean_raw_for_reapply`].
pub fn render_backup(raw: &Value, journal: &Journal) -> Result<String, String> {
    let clean = clean_raw_for_reapply(raw);
    let mut yaml = crate::yaml::to_string(&clean)?;
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    let line = serde_json::to_string(journal).map_err(|e| e.to_string())?;
    Ok(format!(
        "# kubectl-ds backup of daemonset {ns}/{name} (uid {uid}), written {at} before an\n\
         # orphaning delete. Server-set fields are removed: `kubectl apply -f` this file restores it.\n\
         {JOURNAL_PREFIX}{line}\n{yaml}",
        ns = journal.namespace,
        name = journal.name,
        uid = journal.uid,
        at = journal.written_at,
    ))
}

/// Reads a backup file (or any DaemonSet manifest, e.g. `kubectl get ds -o yaml`): the
/// DaemonSet and, when kubectl-ds wrote it, the journal.
pub fn parse_backup(text: &str) -> Result<(DaemonSet, Option<Journal>), String> {
    let journal = match text.lines().find_map(|l| l.strip_prefix(JOURNAL_PREFIX)) {
        Some(line) => Some(
            serde_json::from_str::<Journal>(line)
                .map_err(|e| format!("the kubectl-ds journal line is damaged: {e}"))?,
        ),
        None => None,
    };
    let doc = super::documents::parse_objects(text, "a DaemonSet object")?
        .into_iter()
        .find(|d| super::documents::kind_of(d) == "DaemonSet")
        .ok_or_else(|| "holds no DaemonSet".to_string())?;
    let ds: DaemonSet =
        serde_json::from_value(doc).map_err(|e| format!("not a valid DaemonSet: {e}"))?;
    Ok((ds, journal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::daemon_set;

    const GOOD: &str = "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent-v2, namespace: ns, uid: u-1, resourceVersion: '5', generation: 3}
spec:
  selector: {matchLabels: {component: agent}}
  template:
    metadata: {labels: {app: agent, component: agent}}
    spec: {containers: [{name: c, image: i}]}
status: {desiredNumberScheduled: 3}
";

    #[test]
    fn accepts_a_daemon_set_and_drops_server_fields() {
        let ds = parse_new_daemon_set(GOOD).unwrap();
        assert_eq!(ds.metadata.name.as_deref(), Some("agent-v2"));
        assert!(ds.metadata.uid.is_none() && ds.metadata.resource_version.is_none());
        assert!(ds.metadata.generation.is_none() && ds.status.is_none());
    }

    #[test]
    fn refuses_bad_manifests_with_one_clear_reason() {
        let wrong_kind = GOOD.replace("kind: DaemonSet", "kind: Deployment");
        assert!(parse_new_daemon_set(&wrong_kind)
            .unwrap_err()
            .contains("expected kind DaemonSet"));
        assert!(parse_new_daemon_set("a: [b\n c: d")
            .unwrap_err()
            .contains("not valid YAML"));
        let mismatch = GOOD.replace("{matchLabels: {component: agent}}", "{matchLabels: {x: z}}");
        let e = parse_new_daemon_set(&mismatch).unwrap_err();
        assert!(e.contains("does not match the template's labels"), "{e}");
        let empty = GOOD.replace("{matchLabels: {component: agent}}", "{}");
        assert!(parse_new_daemon_set(&empty)
            .unwrap_err()
            .contains("selector is empty"));
        let two = format!("{GOOD}\n---\n{GOOD}");
        assert!(parse_new_daemon_set(&two)
            .unwrap_err()
            .contains("2 objects"));
        let old_api = GOOD.replace("apps/v1", "extensions/v1beta1");
        assert!(parse_new_daemon_set(&old_api)
            .unwrap_err()
            .contains("apiVersion"));
        assert!(parse_new_daemon_set("").is_err());
        assert!(parse_new_daemon_set("- 1\n- 2").is_err());
    }

    /// The one `-f` reader's rules: a List of one DaemonSet, JSON, a leading empty document.
    #[test]
    fn the_new_manifest_is_read_by_the_one_reader_rules() {
        let plain = parse_new_daemon_set(GOOD).unwrap();
        let indented: String = GOOD.lines().map(|l| format!("  {l}\n")).collect();
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            indented.trim_start()
        );
        assert_eq!(parse_new_daemon_set(&list).unwrap(), plain);
        let value: Value = crate::yaml::from_str(GOOD).unwrap();
        assert_eq!(parse_new_daemon_set(&value.to_string()).unwrap(), plain);
        assert_eq!(
            parse_new_daemon_set(&format!("# header\n---\n{GOOD}---\n")).unwrap(),
            plain
        );
        let two_in_a_list = format!("kind: List\nitems: [{value}, {value}]\n");
        assert_eq!(
            parse_new_daemon_set(&two_in_a_list).unwrap_err(),
            "the file holds 2 objects; expected exactly one DaemonSet"
        );
        assert_eq!(
            parse_new_daemon_set("- 1\n- 2").unwrap_err(),
            "found a list without kind; expected a DaemonSet object"
        );
        // The backup reader takes the DaemonSet out of a List too.
        let (ds, journal) = parse_backup(&list).unwrap();
        assert_eq!(ds.metadata.name.as_deref(), Some("agent-v2"));
        assert!(journal.is_none());
    }

    #[test]
    fn backup_round_trips_with_its_journal() {
        let mut ds = daemon_set(GOOD);
        ds.metadata.finalizers = Some(vec!["orphan".into(), "example.com/keep".into()]);
        ds.metadata.annotations = Some(BTreeMap::from([(
            TEMPLATE_GENERATION_ANNOTATION.to_string(),
            "4".to_string(),
        )]));
        let journal = Journal {
            namespace: "ns".into(),
            name: "agent-v2".into(),
            uid: "u-1".into(),
            resource_version: "5".into(),
            written_at: "2025-01-01T00:00:00Z".into(),
            pods: vec![ObjectRecord {
                name: "p".into(),
                uid: "pu".into(),
                node: Some("n1".into()),
            }],
            revisions: vec![],
        };
        let mut raw = serde_json::to_value(&ds).unwrap();
        // Fields k8s-openapi does not model (a newer API's) survive: the raw object is kept.
        raw["spec"]["template"]["spec"]["futureField"] = serde_json::json!({"a": [1, "x"]});
        raw["spec"]["someAlphaKnob"] = serde_json::json!(true);
        raw["metadata"]["managedFields"] = serde_json::json!([{"manager": "kubectl"}]);
        raw["metadata"]["selfLink"] = serde_json::json!("/apis/apps/v1/x");
        let text = render_backup(&raw, &journal).unwrap();
        let docs: Vec<Value> = crate::yaml::from_str_multi(&text).unwrap();
        assert_eq!(
            docs[0]["spec"]["template"]["spec"]["futureField"],
            serde_json::json!({"a": [1, "x"]})
        );
        assert_eq!(docs[0]["spec"]["someAlphaKnob"], true);
        for gone in [
            "uid",
            "resourceVersion",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            assert!(docs[0]["metadata"].get(gone).is_none(), "{gone}");
        }
        assert!(docs[0].get("status").is_none());
        let (back, j) = parse_backup(&text).unwrap();
        assert_eq!(j.as_ref(), Some(&journal));
        assert!(back.metadata.uid.is_none() && back.status.is_none());
        assert_eq!(
            back.metadata.finalizers,
            Some(vec!["example.com/keep".to_string()])
        );
        // The annotation value stays a string ("4"), as the apiserver requires.
        assert_eq!(super::super::revision::template_generation(&back), Some(4));
        // A plain `kubectl get -o yaml` file is read too, without a journal.
        let (plain, none) = parse_backup(GOOD).unwrap();
        assert!(none.is_none());
        assert_eq!(plain.metadata.uid.as_deref(), Some("u-1"));
    }

    #[test]
    fn recognises_its_own_successor() {
        let manifest = parse_new_daemon_set(GOOD).unwrap();
        let mut existing = prepare_for_create(&manifest, "agent/old-uid", 2);
        existing.metadata.uid = Some("new-uid".into());
        // The apiserver adds defaults: still the same template.
        if let Some(spec) = existing.spec.as_mut() {
            if let Some(ps) = spec.template.spec.as_mut() {
                ps.dns_policy = Some("ClusterFirst".into());
            }
        }
        assert!(is_created_from(&existing, &manifest, Some("agent/old-uid")));
        assert!(is_created_from(&existing, &manifest, None));
        assert!(!is_created_from(&existing, &manifest, Some("agent/other")));
        let changed = parse_new_daemon_set(&GOOD.replace("image: i", "image: j")).unwrap();
        assert!(!is_created_from(&existing, &changed, None));
        let unmarked = parse_new_daemon_set(GOOD).unwrap();
        assert!(!is_created_from(&unmarked, &manifest, None));
    }
}
