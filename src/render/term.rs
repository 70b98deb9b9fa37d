//! Text from the cluster on a terminal: control characters escaped, so an event, condition or
//! container message cannot move the cursor, retitle the window or hide text (the
//! CVE-2021-25743 class). JSON and YAML output carry the text exactly; only the human output
//! goes through [`escape`].
//!
//! kubectl's cli-runtime `printers.EscapeTerminal` (pkg/printers/terminal.go) replaces ESC with
//! `^[` and CR with `\r`; this escapes those the same way and, further, every other C0 control
//! (BEL, backspace, ...), DEL and the C1 controls (U+0080..U+009F; U+009B is a one-byte CSI on
//! some terminals), so that one table cell stays one line.

use std::borrow::Cow;

/// `text` with control characters escaped: ESC as `^[` and CR as `\r` (as kubectl), LF and TAB
/// as `\n` and `\t`, any other C0 control as caret notation (`^G` for BEL), DEL as `^?`, C1
/// controls as `\u{9b}`. Text without controls is returned as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\x1b' => out.push_str("^["),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\x7f' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_every_control_character() {
        assert_eq!(escape("plain text: ok"), "plain text: ok");
        assert_eq!(
            escape("a\x1b[31mred\x1b[0m\rb\x07c"),
            "a^[[31mred^[[0m\\rb^Gc"
        );
        assert_eq!(escape("x\ny\tz\x08\x7f"), "x\\ny\\tz^H^?");
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape("ünïcode ✓"), "ünïcode ✓");
        for b in 0u32..0xa0 {
            let c = char::from_u32(b).unwrap();
            let e = escape(&c.to_string()).into_owned();
            assert!(!e.chars().any(char::is_control), "{b:#x} -> {e:?}");
        }
    }
}
