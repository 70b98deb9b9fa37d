//! `kubectl ds rollout-preview`: not in this build yet (tracked as an open issue).

use crate::cli::RolloutPreviewArgs;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::settings::Settings;

pub async fn run(_args: RolloutPreviewArgs, _settings: &Settings) -> Result<Exit> {
    Err(Error::Usage(
        "'rollout-preview' is not available in this build yet".into(),
    ))
}
