//! `kubectl ds adopt`: not in this build yet (tracked as an open issue).

use crate::cli::AdoptArgs;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::settings::Settings;

pub async fn run(_args: AdoptArgs, _settings: &Settings) -> Result<Exit> {
    Err(Error::Usage(
        "'adopt' is not available in this build yet".into(),
    ))
}
