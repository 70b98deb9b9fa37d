//! A kube client built from kubectl's flags: --kubeconfig, --context, --cluster, --user,
//! --as, --as-group, --token, --server, --request-timeout; KUBECONFIG merged as kubectl does.

use std::path::PathBuf;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::Client;

use crate::error::{chain, Error, Result};
use crate::settings::Settings;

/// A connected client and the namespace to work in.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// `-n`, else the context's namespace, else "default".
    pub namespace: String,
}

/// Reads the kubeconfig as kubectl does: `--kubeconfig` is that one file; else every existing
/// file listed in KUBECONFIG, merged first-wins (missing files are skipped); else ~/.kube/config.
pub fn read_kubeconfig(settings: &Settings) -> Result<Kubeconfig> {
    if let Some(path) = &settings.global.kubeconfig {
        return Kubeconfig::read_from(path).map_err(|e| {
            Error::Config(format!(
                "reading kubeconfig {}: {}",
                path.display(),
                chain(&e)
            ))
        });
    }
    let paths: Vec<PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(v) if !v.is_empty() => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        _ => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            vec![home.join(".kube").join("config")]
        }
    };
    let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if existing.is_empty() {
        return Err(Error::Config(format!(
            "no kubeconfig found (looked in {}); set KUBECONFIG or pass --kubeconfig",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut merged = Kubeconfig::default();
    for p in existing {
        let kc = Kubeconfig::read_from(p).map_err(|e| {
            Error::Config(format!("reading kubeconfig {}: {}", p.display(), chain(&e)))
        })?;
        merged = merged.merge(kc).map_err(|e| {
            Error::Config(format!("merging kubeconfig {}: {}", p.display(), chain(&e)))
        })?;
    }
    Ok(merged)
}

/// Builds the client configuration from the flags.
pub async fn config(settings: &Settings) -> Result<Config> {
    let g = &settings.global;
    let kubeconfig = read_kubeconfig(settings)?;
    if let Some(ctx) = &g.context {
        if !kubeconfig.contexts.iter().any(|c| &c.name == ctx) {
            return Err(Error::Config(format!(
                "context {ctx:?} does not exist in the kubeconfig"
            )));
        }
    } else if kubeconfig
        .current_context
        .as_deref()
        .unwrap_or("")
        .is_empty()
        && g.server.is_none()
    {
        return Err(Error::Config(
            "the kubeconfig has no current-context; pass --context".into(),
        ));
    }
    let options = KubeConfigOptions {
        context: g.context.clone(),
        cluster: g.cluster.clone(),
        user: g.user.clone(),
    };
    let mut cfg = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Config(format!("loading kubeconfig: {}", chain(&e))))?;
    if let Some(server) = &g.server {
        cfg.cluster_url = server
            .parse()
            .map_err(|e| Error::Usage(format!("invalid --server {server:?}: {e}")))?;
    }
    if g.insecure_skip_tls_verify {
        cfg.accept_invalid_certs = true;
    }
    if let Some(token) = &g.token {
        cfg.auth_info.token = Some(token.clone().into());
    }
    if let Some(user) = &g.as_user {
        cfg.auth_info.impersonate = Some(user.clone());
    }
    if !g.as_group.is_empty() {
        cfg.auth_info.impersonate_groups = Some(g.as_group.clone());
    }
    if let Some(ns) = &g.namespace {
        cfg.default_namespace = ns.clone();
    }
    if let Some(t) = settings.request_timeout {
        cfg.connect_timeout = Some(t);
        cfg.read_timeout = Some(t);
        cfg.write_timeout = Some(t);
    }
    Ok(cfg)
}

/// Connects (lazily: the first request reports connection errors).
pub async fn connect(settings: &Settings) -> Result<Cluster> {
    let cfg = config(settings).await?;
    let namespace = cfg.default_namespace.clone();
    let client = Client::try_from(cfg)
        .map_err(|e| Error::Config(format!("building the client: {}", chain(&e))))?;
    Ok(Cluster { client, namespace })
}
