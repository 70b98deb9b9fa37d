//! `kubectl ds orphan NAME`: delete a DaemonSet, keeping its pods and revisions running.

use crate::cli::OrphanArgs;
use crate::cluster::client;
use crate::engine::checks::Overrides;
use crate::error::Result;
use crate::exit::Exit;
use crate::settings::Settings;
use crate::workflows::{self, backup, check_flags, Ctx};

pub async fn run(args: OrphanArgs, settings: &Settings) -> Result<Exit> {
    check_flags(&args.mutation)?;
    let cluster = client::connect(settings).await?;
    let ctx = Ctx::new(cluster, settings, &args.mutation)?;
    let backup = args
        .backup
        .unwrap_or_else(|| backup::default_path(ctx.ns(), &args.name));
    let overrides = Overrides {
        allow_competing_controllers: args.orphaning.allow_competing_controllers,
        allow_managed: args.orphaning.allow_managed,
        ..Overrides::default()
    };
    workflows::orphan::run(&ctx, &args.name, &backup, &overrides).await
}
