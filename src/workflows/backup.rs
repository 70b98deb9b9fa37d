//! The backup file on disk: read (to resume, or to know the old DaemonSet), and written
//! atomically before any delete: an exclusive temporary file with an unpredictable name in the
//! same directory (mode 0600: the object may carry secrets in its env), fsync, rename over the
//! target, fsync of the directory where the platform allows it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::engine::model::Pod;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};

use crate::engine::checks::BackupFileState;
use crate::engine::manifest::{self, Journal, ObjectRecord};
use crate::engine::podstate::target_node;
use crate::engine::snapshot::controller_of;
use crate::error::{Error, Result};

/// `./NAMESPACE-NAME.daemonset.yaml`.
pub fn default_path(ns: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("{ns}-{name}.daemonset.yaml"))
}

/// A backup file as read from disk.
#[derive(Debug, Clone)]
pub struct Backup {
    pub daemon_set: DaemonSet,
    pub journal: Option<Journal>,
}

impl Backup {
    /// Is this a backup of `ns/name`?
    pub fn is_of(&self, ns: &str, name: &str) -> bool {
        let m = &self.daemon_set.metadata;
        m.name.as_deref() == Some(name) && m.namespace.as_deref().is_none_or(|n| n == ns)
    }

    /// The journal, when it describes `ns/name`.
    pub fn journal_of(&self, ns: &str, name: &str) -> Option<&Journal> {
        self.journal
            .as_ref()
            .filter(|j| j.namespace == ns && j.name == name)
    }
}

/// Reads a backup (or any DaemonSet manifest). None when the file does not exist.
pub fn read(path: &Path) -> Result<Option<Backup>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Input(format!("reading {}: {e}", path.display()))),
    };
    let (daemon_set, journal) = manifest::parse_backup(&text)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    Ok(Some(Backup {
        daemon_set,
        journal,
    }))
}

/// What is at `path`, for the BackupFile check, and the backup when it is one of `ns/name`.
pub fn inspect(path: &Path, ns: &str, name: &str) -> (BackupFileState, Option<Backup>) {
    match read(path) {
        Ok(None) => (BackupFileState::Absent, None),
        Ok(Some(b)) if b.is_of(ns, name) => (BackupFileState::SameDaemonSet, Some(b)),
        Ok(Some(b)) => {
            let m = &b.daemon_set.metadata;
            let other = format!(
                "{}/{}",
                m.namespace.as_deref().unwrap_or("?"),
                m.name.as_deref().unwrap_or("?")
            );
            (BackupFileState::OtherDaemonSet(other), None)
        }
        Err(_) => (BackupFileState::NotABackup, None),
    }
}

/// The journal of a DaemonSet about to be deleted: its identity and what it controls.
pub fn journal_for(
    ds: &DaemonSet,
    pods: &[Pod],
    revisions: &[ControllerRevision],
    written_at: String,
) -> Journal {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let owned = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        controller_of(m).is_some_and(|(_, _, u)| u == uid)
    };
    Journal {
        namespace: ds.metadata.namespace.clone().unwrap_or_default(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: uid.clone(),
        resource_version: ds.metadata.resource_version.clone().unwrap_or_default(),
        written_at,
        pods: pods
            .iter()
            .filter(|p| owned(&p.metadata))
            .map(|p| ObjectRecord {
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                node: target_node(p),
            })
            .collect(),
        revisions: revisions
            .iter()
            .filter(|r| owned(&r.metadata))
            .map(|r| ObjectRecord {
                name: r.metadata.name.clone().unwrap_or_default(),
                uid: r.metadata.uid.clone().unwrap_or_default(),
                node: None,
            })
            .collect(),
    }
}

/// Writes the backup of `raw` (the DaemonSet as the apiserver sent it) atomically: the file is
/// either the old one or the complete new one, and is on disk (fsync) before this returns.
pub fn write(path: &Path, raw: &Value, journal: &Journal) -> Result<()> {
    let text = manifest::render_backup(raw, journal)
        .map_err(|e| Error::Io(format!("rendering the backup: {e}")))?;
    write_atomic(path, text.as_bytes())
        .map_err(|e| Error::Io(format!("writing the backup {}: {e}", path.display())))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // O_EXCL with a random name (no predictable temporary to pre-create or link), mode 0600 on
    // Unix; removed again if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubectl-ds-backup-")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir)
}

/// The rename itself must survive a crash: fsync the directory that holds the entry.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file to flush it; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::{daemon_set, pod};

    #[test]
    fn writes_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.yaml");
        let ds = daemon_set(
            "metadata: {name: agent, namespace: ns, uid: u1, resourceVersion: '9'}\nspec: {selector: {matchLabels: {app: a}}, template: {metadata: {labels: {app: a}}}}",
        );
        let owned = pod(
            "metadata: {name: p1, uid: pu1, ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u1, controller: true}]}\nspec: {nodeName: n1, containers: []}",
        );
        let other = pod("metadata: {name: p2, uid: pu2}\nspec: {containers: []}");
        let journal = journal_for(&ds, &[owned, other], &[], "t".into());
        assert_eq!(journal.pods.len(), 1);
        assert_eq!(journal.pods[0].node.as_deref(), Some("n1"));
        write(&path, &serde_json::to_value(&ds).unwrap(), &journal).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let (state, backup) = inspect(&path, "ns", "agent");
        assert_eq!(state, BackupFileState::SameDaemonSet);
        let backup = backup.unwrap();
        assert_eq!(backup.journal_of("ns", "agent"), Some(&journal));
        assert!(backup.journal_of("ns", "other").is_none());
        assert_eq!(
            inspect(&path, "ns", "other").0,
            BackupFileState::OtherDaemonSet("ns/agent".into())
        );
        // No temporary file is left behind; an existing file is replaced, and made 0600.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        fs::write(&path, "old").unwrap();
        write(&path, &serde_json::to_value(&ds).unwrap(), &journal).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        fs::write(&path, "just: text").unwrap();
        assert_eq!(inspect(&path, "ns", "agent").0, BackupFileState::NotABackup);
        assert_eq!(
            inspect(&dir.path().join("none.yaml"), "ns", "agent").0,
            BackupFileState::Absent
        );
    }
}
