//! A kube client built from kubectl's flags: --kubeconfig, --context, --cluster, --user,
//! --as, --as-group, --as-uid, --token, --server, --request-timeout; KUBECONFIG merged as
//! kubectl does. Every request goes through [`super::retry`].

use std::path::PathBuf;
use std::sync::Arc;

use kube::client::ClientBuilder;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::Client;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;
use tower::ServiceBuilder;

use crate::engine::version::ServerVersion;
use crate::error::{chain, Error, Result};
use crate::settings::Settings;

/// A connected client and the namespace to work in.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// `-n`, else the context's namespace, else "default".
    pub namespace: String,
    /// Ask for node and pod lists in protobuf (see [`super::proto`]); false with
    /// `KUBECTL_DS_WIRE=json` (see [`Settings::protobuf`]).
    pub protobuf: bool,
    /// The apiserver's version, read at most once per run (see [`Cluster::server_version`]).
    version: Arc<tokio::sync::OnceCell<Option<ServerVersion>>>,
}

impl Cluster {
    pub fn new(client: Client, namespace: String, protobuf: bool) -> Cluster {
        Cluster {
            client,
            namespace,
            protobuf,
            version: Arc::default(),
        }
    }

    /// The apiserver's version (`GET /version`, readable by every authenticated user through
    /// system:public-info-viewer), asked for once per run however many ask. None when the
    /// request fails or the answer is unreadable: the engine then assumes the current
    /// release's rules and says so, and lists go in pages.
    pub async fn server_version(&self) -> Option<ServerVersion> {
        self.version
            .get_or_init(|| async {
                let info = self.client.apiserver_version().await.ok()?;
                ServerVersion::parse(&info.major, &info.minor, &info.git_version)
            })
            .await
            .clone()
    }

    /// Read node and pod lists whole rather than in pages (their protobuf is decoded as it
    /// arrives either way): on servers that serve whole lists from their watch cache
    /// ([`ServerVersion::serves_whole_lists`]).
    pub async fn lists_whole(&self) -> bool {
        self.server_version()
            .await
            .is_some_and(|v| v.serves_whole_lists())
    }
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
    if g.disable_compression {
        cfg.disable_compression = true;
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
    if let Some(uid) = &g.as_uid {
        // Sent as the Impersonate-Uid header (kube's ConfigExt, as client-go's transport).
        cfg.auth_info.impersonate_uid = Some(uid.clone());
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
    let client = client_for(cfg)?;
    Ok(Cluster::new(client, namespace, settings.protobuf))
}

/// The client for `cfg`, every request under kubectl-ds's retry policy (kube's own retry layer
/// off: see [`super::retry`]). Must be called inside the tokio runtime (the buffer's worker).
pub fn client_for(mut cfg: Config) -> Result<Client> {
    cfg.default_retry = false;
    let builder =
        ClientBuilder::try_from(cfg).map_err(|e| Error::kube("building the client", e))?;
    let layers = ServiceBuilder::new()
        .layer(RetryLayer::new(super::retry::RetryPolicy::default()))
        .layer(BufferLayer::<http::Request<kube::client::Body>>::new(1024));
    Ok(builder.with_layer(&layers).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalFlags;
    use crate::cluster::mock::{self, Reply, Seen};
    use k8s_openapi::api::apps::v1::DaemonSet;
    use kube::Api;

    /// The requests a mock apiserver saw when one DaemonSet was read through `connect` with
    /// these flags, from a kubeconfig with a token user (`field` is appended to its cluster).
    async fn requests_of_one_get(
        dir: &std::path::Path,
        field: &str,
        global: GlobalFlags,
    ) -> Vec<Seen> {
        let (url, seen) = mock::serve(vec![Reply::json(
            200,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a"}}),
        )])
        .await;
        let kc = dir.join("config");
        std::fs::write(
            &kc,
            format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{url}'{field}}}}}]\nusers: [{{name: u, user: {{token: secret}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u, namespace: ns}}}}]\ncurrent-context: x\n"),
        )
        .unwrap();
        let global = GlobalFlags {
            kubeconfig: Some(kc),
            request_timeout: "0".into(),
            ..global
        };
        let settings = Settings::resolve(&global).unwrap();
        let cluster = connect(&settings).await.unwrap();
        let api: Api<DaemonSet> = Api::namespaced(cluster.client, &cluster.namespace);
        api.get("a").await.unwrap();
        let seen = seen.lock().unwrap().clone();
        seen
    }

    /// --as, --as-group and --as-uid reach the apiserver as kubectl sends them.
    #[tokio::test]
    async fn impersonation_flags_become_headers() {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalFlags {
            as_user: Some("jane".into()),
            as_group: vec!["devs".into()],
            as_uid: Some("1234-uid".into()),
            ..GlobalFlags::default()
        };
        let seen = requests_of_one_get(dir.path(), "", global).await;
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!(r.line, "GET /apis/apps/v1/namespaces/ns/daemonsets/a");
        assert_eq!(r.header("impersonate-user"), Some("jane"));
        assert_eq!(r.header("impersonate-group"), Some("devs"));
        assert_eq!(r.header("impersonate-uid"), Some("1234-uid"));
        assert_eq!(r.header("authorization"), Some("Bearer secret"));
    }

    /// Responses are asked for gzipped, as kubectl asks, unless --disable-compression or the
    /// kubeconfig cluster's `disable-compression: true` says not to.
    #[tokio::test]
    async fn compression_is_asked_for_unless_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let mut asked = Vec::new();
        for (flag, field) in [
            (false, ""),
            (true, ""),
            (false, ", disable-compression: true"),
        ] {
            let global = GlobalFlags {
                disable_compression: flag,
                ..GlobalFlags::default()
            };
            let seen = requests_of_one_get(dir.path(), field, global).await;
            asked.push(seen[0].header("accept-encoding").map(str::to_owned));
        }
        assert_eq!(asked, [Some("gzip".to_owned()), None, None]);
    }
}
