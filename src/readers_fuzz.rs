//! A bounded random-input test of the one `-f` reader (`engine::documents::parse_objects`,
//! YAML and JSON: several documents, Lists) and of what each command takes from it: the
//! new-manifest reader of adopt/migrate, the backup reader and the typed objects explain and
//! rollout-preview read. Inputs are random token soup, random edits of real
//! manifests, deep nesting and alias bombs; each must give a value or an error, never a panic
//! (and never a stack overflow, which would abort the test binary).

use std::panic::{catch_unwind, AssertUnwindSafe};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::engine::documents::parse_objects;
use crate::engine::manifest::{parse_backup, parse_new_daemon_set};

/// Inputs tried per run (fixed seed: a failure reproduces).
const INPUTS: usize = 2_000;

const SEEDS: [&str; 4] = [
    "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: ns}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec:\n      containers: [{name: c, image: 'i:1', args: [\"--x=1\"]}]\n      tolerations: [{operator: Exists}]\n",
    r#"{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "annotations": {"a": "b"}}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}"#,
    "# kubectl-ds-journal: {\"namespace\":\"ns\",\"name\":\"agent\",\"uid\":\"u\",\"resourceVersion\":\"1\",\"writtenAt\":\"t\",\"pods\":[{\"name\":\"p\",\"uid\":\"pu\",\"node\":\"n\"}],\"revisions\":[]}\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec: {selector: {matchLabels: {app: a}}, template: {metadata: {labels: {app: a}}}}\n",
    "apiVersion: v1\nkind: List\nitems:\n- kind: Node\n  metadata: {name: n1, labels: {a: b}}\n  status: {allocatable: {cpu: '4', pods: '110'}}\n- kind: Pod\n  metadata: {name: p1, namespace: ns}\n  spec: {nodeName: n1, containers: [{name: c, resources: {requests: {cpu: 100m}}}]}\n---\nkind: DaemonSet\napiVersion: apps/v1\nmetadata: {name: x}\n",
];

const TOKENS: [&str; 40] = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ", ",
    "-",
    " ",
    "  ",
    "\n",
    "\t",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "|",
    ">",
    "?",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "<<: ",
    "~",
    "null",
    "true",
    "1e999",
    "-0",
    "0x1F",
    "99999999999999999999999",
    "kind: ",
    "DaemonSet",
    "apiVersion: ",
    "apps/v1",
    "metadata",
    "name: ",
    "\u{1b}[31m",
    "é✓",
    "\\u0000",
];

/// xorshift64*: small, deterministic, enough for input generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn token_soup(rng: &mut Rng) -> String {
    (0..rng.below(60))
        .map(|_| TOKENS[rng.below(TOKENS.len())])
        .collect()
}

/// A seed with a few random edits: insert a token, delete a span, duplicate a span.
fn mutated(rng: &mut Rng) -> String {
    let mut s: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(s.len() + 1);
        match rng.below(3) {
            0 => {
                let t: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                s.splice(at..at, t);
            }
            1 => {
                let end = (at + rng.below(20)).min(s.len());
                s.drain(at..end);
            }
            _ => {
                let end = (at + rng.below(40)).min(s.len());
                let span: Vec<char> = s[at..end].to_vec();
                s.splice(at..at, span);
            }
        }
    }
    s.into_iter().collect()
}

/// Deep nesting (flow and block, YAML and JSON) and alias expansion.
fn structural(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(300);
    match rng.below(5) {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{\"a\": ".repeat(depth), "}".repeat(depth)),
        2 => (0..depth)
            .map(|i| format!("{}- \n", " ".repeat(i)))
            .collect(),
        3 => {
            // a: &a [x, x], b: &b [*a, *a], ...: 2^n leaves if expanded.
            let mut s = String::from("a0: &a0 [x, x]\n");
            for i in 1..(1 + rng.below(12)) {
                s.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
            }
            s
        }
        _ => format!(
            "kind: DaemonSet\nmetadata: {{name: '{}'}}\n",
            "x".repeat(depth * 50)
        ),
    }
}

/// Every reader over one input; Err is fine, a panic is not.
fn read_all(text: &str) {
    if let Ok(docs) = parse_objects(text, "objects") {
        for d in docs {
            let _ = serde_json::from_value::<DaemonSet>(d.clone());
            let _ = serde_json::from_value::<Node>(d.clone());
            let _ = serde_json::from_value::<Pod>(d);
        }
    }
    let _ = parse_new_daemon_set(text);
    let _ = parse_backup(text);
}

#[test]
fn readers_never_panic_on_random_input() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut panics = Vec::new();
    for i in 0..INPUTS {
        let input = match i % 10 {
            0..=3 => mutated(&mut rng),
            4..=7 => token_soup(&mut rng),
            _ => structural(&mut rng),
        };
        if catch_unwind(AssertUnwindSafe(|| read_all(&input))).is_err() {
            panics.push(input);
        }
    }
    eprintln!(
        "-f readers: {INPUTS} random inputs, {} panic(s)",
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "panicked on: {:?}",
        &panics[..panics.len().min(3)]
    );
}
