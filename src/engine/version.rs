//! The apiserver's version (`/version`) and the controller rules that differ between releases.
//!
//! The version is data: `cluster` reads it once per run and the engine applies the rules of
//! that release. Without it (a saved snapshot) the current release's rules are assumed, and the
//! output says so.

use serde::{Deserialize, Serialize};

/// A Kubernetes release as the apiserver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// `gitVersion`, e.g. `v1.20.2` or `v1.29.4-gke.1043002`.
    pub git_version: String,
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// From `/version`'s `major`, `minor` and `gitVersion`. Providers write minors such as
    /// `"29+"`; an unreadable major/minor falls back to `gitVersion` (`v1.29.4-...`).
    pub fn parse(major: &str, minor: &str, git_version: &str) -> Option<ServerVersion> {
        let num = |s: &str| -> Option<u32> {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let (major, minor) = match (num(major), num(minor)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                let mut parts = git_version.trim_start_matches('v').split('.');
                (num(parts.next()?)?, num(parts.next()?)?)
            }
        };
        Some(ServerVersion {
            git_version: git_version.to_string(),
            major,
            minor,
        })
    }

    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Does this apiserver serve a whole list (no `limit`) from its watch cache and write it as
    /// it encodes it? From 1.34: ConsistentListFromCache (a list without resourceVersion read
    /// from the cache once it has caught up with etcd) and StreamingCollectionEncodingToProtobuf
    /// and ToJSON are GA and locked on (pkg/features/versioned_kube_features.go). Such a list
    /// costs the apiserver no more than its pages would, and one request instead of a chain of
    /// continue tokens; before 1.34 an unpaged list may be read from etcd and built whole in
    /// the apiserver's memory, so lists go in pages of 500, as kubectl's `--chunk-size`.
    pub fn serves_whole_lists(&self) -> bool {
        self.at_least(1, 34)
    }
}

/// The version-dependent rules a verdict was computed with (`rules` in the JSON documents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// The apiserver's `gitVersion` the rules were applied for; null when the version is not
    /// known (then the rules of the current release are assumed).
    pub server_version: Option<String>,
    /// `IsPodUpdated` also counts a pod as updated when its `pod-template-generation` label
    /// equals the DaemonSet's templateGeneration (v1.24 and later); before v1.24 only the
    /// `controller-revision-hash` label counts.
    pub template_generation_counts: bool,
    /// getPatch writes `"creationTimestamp":null` in the template's metadata (up to 1.33;
    /// from 1.34 ObjectMeta's creationTimestamp is `omitzero`). Part of the bytes compared
    /// with every ControllerRevision.
    #[serde(skip)]
    pub null_creation_timestamp: bool,
    /// dedupCurHistories relabels pods with a PATCH (1.23 and later). Up to 1.22 it sent an
    /// UPDATE, which the daemon-set-controller's bootstrap RBAC role (list, watch, create,
    /// delete, patch on pods) forbids: every sync then fails and the DaemonSet is stuck while
    /// byte-equal duplicates exist.
    #[serde(skip)]
    pub dedup_relabels: bool,
}

impl Rules {
    /// The rules of `version`, or of the current release when it is unknown.
    pub fn for_version(version: Option<&ServerVersion>) -> Rules {
        Rules {
            server_version: version.map(|v| v.git_version.clone()),
            // mirrors daemonset_util.go IsPodUpdated. Up to v1.23 it compared the label with
            // fmt.Sprint(dsTemplateGeneration), a *int64: Go prints the pointer ("0xc000..."),
            // which never equals a label, so only the hash counted. v1.24.0 compares with
            // fmt.Sprint(*dsTemplateGeneration) (first in v1.24.0-beta.0; v1.23.17, the last
            // 1.23, still prints the pointer).
            template_generation_counts: version.is_none_or(|v| v.at_least(1, 24)),
            // mirrors apimachinery meta/v1 types.go ObjectMeta.CreationTimestamp: the json tag
            // gained `omitzero` in v0.34.0 (Kubernetes 1.34); before, a zero Time was written
            // as null by json.Marshal.
            null_creation_timestamp: version.is_some_and(|v| !v.at_least(1, 34)),
            // mirrors update.go dedupCurHistories: Pods().Update up to v1.22.17, Pods().Patch
            // from v1.23.0; bootstrappolicy controller_policy.go daemon-set-controller.
            dedup_relabels: version.is_none_or(|v| v.at_least(1, 23)),
        }
    }

    /// One line for the table headers.
    pub fn describe(&self) -> String {
        let version = match &self.server_version {
            Some(v) => format!("Kubernetes {v}"),
            None => "an unknown Kubernetes version (assumed 1.24 or later)".to_string(),
        };
        let updated = if self.template_generation_counts {
            "a pod is up to date by its revision hash or its pod-template-generation"
        } else {
            "a pod is up to date by its revision hash only"
        };
        format!("rules of {version}: {updated}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole lists from 1.34 (the release the watch cache's consistent lists and streamed
    /// list encoding went GA), pages before it, a provider's minor ("34+") read as 34.
    #[test]
    fn whole_lists_from_1_34() {
        let v = |minor: &str| ServerVersion::parse("1", minor, "").unwrap();
        assert!(!v("20").serves_whole_lists());
        assert!(!v("33").serves_whole_lists());
        assert!(v("34+").serves_whole_lists());
        assert!(v("35").serves_whole_lists());
    }

    #[test]
    fn parses_plain_and_provider_versions() {
        let v = ServerVersion::parse("1", "20", "v1.20.2").unwrap();
        assert_eq!((v.major, v.minor), (1, 20));
        let v = ServerVersion::parse("1", "29+", "v1.29.4-gke.1043002").unwrap();
        assert_eq!((v.major, v.minor), (1, 29));
        let v = ServerVersion::parse("", "", "v1.35.4").unwrap();
        assert_eq!((v.major, v.minor), (1, 35));
        assert!(ServerVersion::parse("", "", "devel").is_none());
    }

    #[test]
    fn template_generation_counts_from_1_24() {
        let rules = |minor: &str| {
            let v = ServerVersion::parse("1", minor, &format!("v1.{minor}.0")).unwrap();
            Rules::for_version(Some(&v))
        };
        assert!(!rules("20").template_generation_counts);
        assert!(!rules("23").template_generation_counts);
        assert!(rules("24").template_generation_counts);
        assert!(rules("35").template_generation_counts);
        assert!(rules("20").null_creation_timestamp && rules("33").null_creation_timestamp);
        assert!(!rules("34").null_creation_timestamp && !rules("35").null_creation_timestamp);
        assert!(!rules("22").dedup_relabels && rules("23").dedup_relabels);
        let unknown = Rules::for_version(None);
        assert!(unknown.template_generation_counts);
        assert!(unknown.server_version.is_none());
        assert!(unknown.describe().contains("assumed"));
        assert!(rules("20").describe().contains("v1.20.0"));
        assert!(rules("20").describe().contains("hash only"));
    }
}
