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
    /// Standard output is a terminal (`status` draws a screen there).
    pub stdout_is_tty: bool,
    /// Standard input and standard error are terminals (an interactive confirmation is possible).
    pub interactive: bool,
    /// Test-only: `KUBECTL_DS_FAILPOINT=STEP[:hang|:sleep=MS]` makes a mutating workflow exit
    /// abruptly (or hang until killed, or pause MS milliseconds) right after STEP (after-backup, after-delete, after-orphan,
    /// after-create), to prove that re-running the same command finishes the job. Compiled
    /// only into debug builds (`cargo test`) or with `--features failpoints`: a release build
    /// has no failpoints and never reads the variable.
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    pub failpoint: Option<String>,
    /// Node and pod lists in protobuf (the default); `KUBECTL_DS_WIRE=json` asks for JSON, the
    /// encoding every other list uses: the benchmark compares both paths' output, and it is a
    /// way around an apiserver or proxy that mishandles protobuf.
    pub protobuf: bool,
    /// This command line as the user can type it again (`kubectl ds ...`, shell-quoted): what
    /// a mutating workflow names to resume after a failure.
    pub command_line: String,
}

/// The wire encoding variable (see [`Settings::protobuf`]).
pub const WIRE_VAR: &str = "KUBECTL_DS_WIRE";

/// The test-only failpoint variable (see [`Settings::failpoint`]).
#[cfg(any(debug_assertions, feature = "failpoints"))]
pub const FAILPOINT_VAR: &str = "KUBECTL_DS_FAILPOINT";

impl Settings {
    pub fn resolve(global: &GlobalFlags) -> Result<Settings> {
        let request_timeout = parse_duration(&global.request_timeout)
            .map_err(|e| Error::Usage(format!("invalid --request-timeout: {e}")))?;
        let request_timeout = (!request_timeout.is_zero()).then_some(request_timeout);
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stdout_is_tty = std::io::stdout().is_terminal();
        let color = decide_color(global.color, stdout_is_tty, no_color);
        Ok(Settings {
            global: global.clone(),
            color,
            request_timeout,
            stdout_is_tty,
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            #[cfg(any(debug_assertions, feature = "failpoints"))]
            failpoint: std::env::var(FAILPOINT_VAR).ok().filter(|v| !v.is_empty()),
            protobuf: std::env::var(WIRE_VAR).map_or(true, |v| v != "json"),
            command_line: command_line(std::env::args().skip(1)),
        })
    }
}

/// `kubectl ds ARGS...`, each argument quoted for a POSIX shell where it needs it.
pub fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut out = String::from("kubectl ds");
    for a in args {
        out.push(' ');
        let plain = !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
        if plain {
            out.push_str(&a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

/// `--color=auto` colours only a terminal, and never when NO_COLOR is set (no-color.org).
pub fn decide_color(choice: ColorChoice, stdout_is_tty: bool, no_color: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_tty && !no_color,
    }
}

/// The longest duration accepted: Go's `time.Duration` limit (2^63-1 ns, about 292 years),
/// which kubectl's `time.ParseDuration` enforces ("invalid duration" beyond it).
pub const MAX_DURATION: Duration = Duration::from_secs(i64::MAX as u64 / 1_000_000_000);

/// Parses kubectl-style durations: a bare integer is seconds; else a sequence such as
/// `1h2m3s`, `500ms`, `1.5s`. Negative, non-numeric and out-of-range values are errors
/// (never a panic): mirrors Go's time.ParseDuration, which kubectl uses.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.starts_with('-') {
        return Err(format!("{text:?}: a duration cannot be negative"));
    }
    let too_long = || {
        format!(
            "{text:?}: too long (the limit is {}h)",
            MAX_DURATION.as_secs() / 3600
        )
    };
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<u64>() {
            Ok(secs) if secs <= MAX_DURATION.as_secs() => Ok(Duration::from_secs(secs)),
            _ => Err(too_long()),
        };
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
    // Duration::from_secs_f64 panics on values it cannot hold: check first.
    if !total.is_finite() || total > MAX_DURATION.as_secs_f64() {
        return Err(too_long());
    }
    Duration::try_from_secs_f64(total).map_err(|_| too_long())
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

    /// Absurd values are errors with a reason, never a panic.
    #[test]
    fn absurd_durations_are_errors() {
        let cases = [
            ("-5", "negative"),
            ("-1s", "negative"),
            ("18446744073709551616", "too long"),
            ("18446744073709551615", "too long"),
            ("9999999999999999999999999h", "too long"),
            ("1e400s", "unknown unit"),
            ("NaN", "expected a number"),
            ("inf", "expected a number"),
            ("1.2.3s", "bad number"),
            ("5s5", "missing unit"),
            ("ten", "expected a number"),
        ];
        let long = format!("{}h", "9".repeat(400));
        for (input, want) in cases.iter().copied().chain([(long.as_str(), "too long")]) {
            let e = parse_duration(input).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
        assert_eq!(
            parse_duration("2562047h").unwrap().as_secs(),
            2562047 * 3600
        );
        assert_eq!(
            parse_duration(&MAX_DURATION.as_secs().to_string()).unwrap(),
            MAX_DURATION
        );
    }

    #[test]
    fn command_lines_are_quoted_for_the_shell() {
        let args = [
            "migrate",
            "old",
            "-f",
            "my dir/new.yaml",
            "--backup=it's.yaml",
            "",
        ];
        assert_eq!(
            command_line(args.iter().map(|s| s.to_string())),
            "kubectl ds migrate old -f 'my dir/new.yaml' '--backup=it'\\''s.yaml' ''"
        );
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
