//! `kubectl ds migrate`: not in this build yet (tracked as an open issue).

use crate::cli::MigrateArgs;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::settings::Settings;

pub async fn run(_args: MigrateArgs, _settings: &Settings) -> Result<Exit> {
    Err(Error::Usage(
        "'migrate' is not available in this build yet".into(),
    ))
}
