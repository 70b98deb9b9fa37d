//! The shared vocabulary of the pre-flight checks: a check's code, verdict and message, the
//! override flags and how they turn blocks into warnings. Its own module so that `checks` (the
//! filters, which read the adoption analysis) and `adoption` (whose analysis carries its
//! checks), `owner` and `claimers` all depend on it and not on each other.

use serde::{Deserialize, Serialize};

pub const ALLOW_LEFTOVER_PODS: &str = "--allow-leftover-pods";
pub const ALLOW_POD_DELETION: &str = "--allow-pod-deletion";
pub const ALLOW_RESTARTS: &str = "--allow-restarts";
pub const ALLOW_COMPETING_CONTROLLERS: &str = "--allow-competing-controllers";
pub const ALLOW_MANAGED: &str = "--allow-managed";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Block,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Block => "block",
        }
    }
}

/// Stable check codes (the JSON contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckCode {
    /// The DaemonSet to orphan is already being deleted.
    DeletionState,
    /// A tool owns the DaemonSet to orphan (Helm, Argo CD, Flux, an operator's ownerReference):
    /// it may recreate it or prune the new one.
    OwnerOfRecord,
    /// Another controller (ReplicaSet, ReplicationController, StatefulSet, Job, DaemonSet)
    /// selects pods that will be orphaned: it would adopt them.
    CompetingController,
    /// The backup file would overwrite something that is not a backup of this DaemonSet.
    BackupFile,
    /// A DaemonSet of the new name already exists.
    NameTaken,
    /// Pods to take over are controlled by another controller.
    ForeignController,
    /// Another DaemonSet's selector matches pods that will be orphaned.
    CompetingSelector,
    /// Pods the new selector misses: left without a controller, a duplicate beside each.
    LeftBehind,
    /// Controller-less pods that were not the old DaemonSet's also match and will be adopted.
    AlsoAdopted,
    /// Adopted pods the new DaemonSet will delete (nodes it no longer covers, duplicates).
    PodDeletion,
    /// Whether the old ControllerRevision is reused, so pods keep their revision hash.
    RevisionReuse,
    /// The deprecated.daemonset.template.generation pitfall.
    TemplateGeneration,
    /// Template differences that make the controller replace adopted pods.
    Restarts,
    /// Nodes that will get a new pod.
    NewPods,
    /// Nothing to adopt.
    NothingToAdopt,
}

impl CheckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckCode::DeletionState => "DeletionState",
            CheckCode::OwnerOfRecord => "OwnerOfRecord",
            CheckCode::CompetingController => "CompetingController",
            CheckCode::BackupFile => "BackupFile",
            CheckCode::NameTaken => "NameTaken",
            CheckCode::ForeignController => "ForeignController",
            CheckCode::CompetingSelector => "CompetingSelector",
            CheckCode::LeftBehind => "LeftBehind",
            CheckCode::AlsoAdopted => "AlsoAdopted",
            CheckCode::PodDeletion => "PodDeletion",
            CheckCode::RevisionReuse => "RevisionReuse",
            CheckCode::TemplateGeneration => "TemplateGeneration",
            CheckCode::Restarts => "Restarts",
            CheckCode::NewPods => "NewPods",
            CheckCode::NothingToAdopt => "NothingToAdopt",
        }
    }
}

/// One check's verdict, its explanation and, for a block, the flag that overrides it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub code: CheckCode,
    pub verdict: Verdict,
    pub message: String,
    /// The flag that turns this block into a warning; none when nothing can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_flag: Option<String>,
    /// A block the user allowed with its flag (now a warn).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overridden: bool,
    /// The pods concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    /// Steps that make the block go away safely (hand the object over from its owner first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoff: Vec<String>,
}

impl Check {
    pub fn ok(code: CheckCode, message: impl Into<String>) -> Check {
        Check {
            code,
            verdict: Verdict::Ok,
            message: message.into(),
            override_flag: None,
            overridden: false,
            pods: Vec::new(),
            handoff: Vec::new(),
        }
    }

    pub fn warn(code: CheckCode, message: impl Into<String>) -> Check {
        Check {
            verdict: Verdict::Warn,
            ..Check::ok(code, message)
        }
    }

    /// A block; `flag` overrides it (None: nothing can).
    pub fn block(code: CheckCode, message: impl Into<String>, flag: Option<&str>) -> Check {
        Check {
            verdict: Verdict::Block,
            override_flag: flag.map(str::to_string),
            ..Check::ok(code, message)
        }
    }

    pub fn with_pods(mut self, pods: Vec<String>) -> Check {
        self.pods = pods;
        self
    }

    /// The one-line text of a block, naming what overrides it.
    pub fn refusal(&self) -> String {
        match &self.override_flag {
            Some(flag) => format!(
                "{}: {} (use {flag} to proceed anyway)",
                self.code.as_str(),
                self.message
            ),
            None => format!("{}: {}", self.code.as_str(), self.message),
        }
    }
}

/// The override flags the user passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub allow_leftover_pods: bool,
    pub allow_pod_deletion: bool,
    pub allow_restarts: bool,
    pub allow_competing_controllers: bool,
    pub allow_managed: bool,
}

impl Overrides {
    fn allows(&self, flag: &str) -> bool {
        match flag {
            ALLOW_LEFTOVER_PODS => self.allow_leftover_pods,
            ALLOW_POD_DELETION => self.allow_pod_deletion,
            ALLOW_RESTARTS => self.allow_restarts,
            ALLOW_COMPETING_CONTROLLERS => self.allow_competing_controllers,
            ALLOW_MANAGED => self.allow_managed,
            _ => false,
        }
    }
}

/// Turns every block whose flag was passed into an overridden warn.
pub fn apply_overrides(checks: Vec<Check>, overrides: &Overrides) -> Vec<Check> {
    checks
        .into_iter()
        .map(|mut c| {
            let allowed = c
                .override_flag
                .as_deref()
                .is_some_and(|f| overrides.allows(f));
            if c.verdict == Verdict::Block && allowed {
                c.verdict = Verdict::Warn;
                c.overridden = true;
            }
            c
        })
        .collect()
}

/// The checks that still block.
pub fn blocks(checks: &[Check]) -> Vec<&Check> {
    checks
        .iter()
        .filter(|c| c.verdict == Verdict::Block)
        .collect()
}
