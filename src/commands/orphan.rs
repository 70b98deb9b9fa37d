//! `kubectl ds orphan`: not in this build yet (tracked as an open issue).

use crate::cli::OrphanArgs;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::settings::Settings;

pub async fn run(_args: OrphanArgs, _settings: &Settings) -> Result<Exit> {
    Err(Error::Usage(
        "'orphan' is not available in this build yet".into(),
    ))
}
