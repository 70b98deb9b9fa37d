//! Resolved settings: the only place that reads the environment, the tty and NO_COLOR.

use std::io::IsTerminal;
use std::time::Duration;

use crate::cli::{ColorChoice, GlobalFlags};
use crate::error::{Error, Result};

/// Everything a command needs from the command line and the environment, resolved once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub global: GlobalFlags,
    /// Colour stdout output.
    pub color: bool,
    /// Per-request timeout; `None` means no limit (`--request-timeout=0`).
    pub request_timeout: Option<Duration>,
    /// Standard input and standard error are terminals (an interactive confirmation is possible).
    pub interactive: bool,
    /// Test-only: `KUBECTL_DS_FAILPOINT=STEP[:hang]` makes a mutating workflow exit abruptly
    /// (or hang until killed) right after STEP (after-backup, after-delete, after-orphan,
    /// after-create), to prove that re-running the same command finishes the job.
    pub failpoint: Option<String>,
}

/// The test-only failpoint variable (see [`Settings::failpoint`]).
pub const FAILPOINT_VAR: &str = "KUBECTL_DS_FAILPOINT";

impl Settings {
    pub fn resolve(global: &GlobalFlags) -> Result<Settings> {
        let request_timeout = parse_duration(&global.request_timeout)
            .map_err(|e| Error::Usage(format!("invalid --request-timeout: {e}")))?;
        let request_timeout = (!request_timeout.is_zero()).then_some(request_timeout);
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = decide_color(global.color, std::io::stdout().is_terminal(), no_color);
        Ok(Settings {
            global: global.clone(),
            color,
            request_timeout,
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            failpoint: std::env::var(FAILPOINT_VAR).ok().filter(|v| !v.is_empty()),
        })
    }
}

/// `--color=auto` colours only a terminal, and never when NO_COLOR is set (no-color.org).
pub fn decide_color(choice: ColorChoice, stdout_is_tty: bool, no_color: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_tty && !no_color,
    }
}

/// Parses kubectl-style durations: a bare integer is seconds; else a sequence such as
/// `1h2m3s`, `500ms`, `1.5s`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?}: missing unit (use s, m, h or ms)"))?;
        if num_len == 0 {
            return Err(format!("{text:?}: expected a number"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{text:?}: bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("{text:?}: unknown unit {other:?}")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn colour_choice() {
        assert!(decide_color(ColorChoice::Always, false, true));
        assert!(!decide_color(ColorChoice::Never, true, false));
        assert!(decide_color(ColorChoice::Auto, true, false));
        assert!(!decide_color(ColorChoice::Auto, true, true));
        assert!(!decide_color(ColorChoice::Auto, false, false));
    }
}
