//! `kubectl ds adopt -f NEW.yaml`: create a DaemonSet that takes over orphaned pods.

use crate::cli::AdoptArgs;
use crate::cluster::client;
use crate::engine::checks::Overrides;
use crate::error::Result;
use crate::exit::Exit;
use crate::settings::Settings;
use crate::workflows::{self, adopt::load_manifest, check_flags, Ctx};

pub async fn run(args: AdoptArgs, settings: &Settings) -> Result<Exit> {
    check_flags(&args.mutation)?;
    let manifest = load_manifest(&args.file)?;
    let cluster = client::connect(settings).await?;
    let ctx = Ctx::new(cluster, settings, &args.mutation)?;
    let overrides = Overrides {
        allow_leftover_pods: args.allow_leftover_pods,
        allow_pod_deletion: args.allow_pod_deletion,
        allow_restarts: args.allow_restarts,
        ..Overrides::default()
    };
    let from_backup = args.from_backup.as_deref();
    workflows::adopt::run(&ctx, manifest, &args.file, from_backup, &overrides).await
}
