//! `kubectl ds migrate NAME -f NEW.yaml`: orphan, then adopt, resumably.

use crate::cli::MigrateArgs;
use crate::cluster::client;
use crate::engine::checks::Overrides;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::settings::{parse_duration, Settings};
use crate::workflows::{self, adopt::load_manifest, backup, check_flags, migrate::Request, Ctx};

pub async fn run(args: MigrateArgs, settings: &Settings) -> Result<Exit> {
    check_flags(&args.mutation)?;
    let watch_recreate = parse_duration(&args.watch_recreate)
        .map_err(|e| Error::Usage(format!("invalid --watch-recreate: {e}")))?;
    let manifest = load_manifest(&args.file)?;
    let cluster = client::connect(settings).await?;
    let ctx = Ctx::new(cluster, settings, &args.mutation)?;
    let backup_path = args
        .backup
        .unwrap_or_else(|| backup::default_path(ctx.ns(), &args.name));
    let req = Request {
        old_name: &args.name,
        manifest,
        file: &args.file,
        backup_path: &backup_path,
        overrides: Overrides {
            allow_leftover_pods: args.allow_leftover_pods,
            allow_pod_deletion: args.allow_pod_deletion,
            allow_restarts: args.allow_restarts,
            allow_competing_controllers: args.orphaning.allow_competing_controllers,
            allow_managed: args.orphaning.allow_managed,
        },
        watch_recreate,
    };
    workflows::migrate::run(&ctx, &req).await
}
