//! The text log's last line of defence against forged lines: every control character of a
//! log record but its final newline (and tabs, and the formatter's own colour codes when the
//! log goes to a terminal) is written escaped, `\u{d}` for a CR, so no text from a client (a
//! stream name, an RTMP app, a URL, an error quoting a client's bytes) can start a line of
//! its own or rewrite one on a terminal. Fields are escaped where they are logged too; this
//! catches what a message interpolates. The JSON log needs none of it: JSON escapes.

use std::borrow::Cow;
use std::io::{self, Write};

/// Whether `c` is written escaped (besides control characters: the Unicode line and
/// paragraph separators, which some log viewers break lines at).
fn must_escape(c: char, keep_ansi: bool) -> bool {
    match c {
        '\t' => false,
        '\x1b' => !keep_ansi,
        '\u{2028}' | '\u{2029}' => true,
        c => c.is_control(),
    }
}

/// One formatted log record (ending in `\n`) with every character [`must_escape`] says
/// written as `\u{..}`; unchanged (borrowed) when there is none.
pub fn escape_record(record: &[u8], keep_ansi: bool) -> Cow<'_, [u8]> {
    let (body, newline) = match record.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (record, false),
    };
    let text = String::from_utf8_lossy(body);
    if !text.chars().any(|c| must_escape(c, keep_ansi)) && matches!(text, Cow::Borrowed(_)) {
        return Cow::Borrowed(record);
    }
    let mut out = String::with_capacity(record.len() + 16);
    for c in text.chars() {
        if must_escape(c, keep_ansi) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if newline {
        out.push('\n');
    }
    Cow::Owned(out.into_bytes())
}

/// Standard error, escaping each record (`tracing_subscriber` writes a record in one
/// `write_all`, which this takes whole).
#[derive(Debug, Clone, Copy)]
pub struct EscapedStderr {
    /// The formatter writes ANSI colours (stderr is a terminal): escape characters pass.
    pub ansi: bool,
}

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr()
            .lock()
            .write_all(&escape_record(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_lines_are_escaped_and_the_record_ends_once() {
        let rec = b"INFO play name=live/a\r\nX-Injected: 1\n";
        let out = escape_record(rec, false);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "INFO play name=live/a\\u{d}\\u{a}X-Injected: 1\n"
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn clean_records_are_untouched() {
        let rec = b"INFO \x1b[1mplay\x1b[0m\tname=live/a \xc3\xa9\n";
        assert!(matches!(escape_record(rec, true), Cow::Borrowed(_)));
        let out = escape_record(rec, false);
        assert!(String::from_utf8_lossy(&out).starts_with("INFO \\u{1b}[1mplay"));
    }

    #[test]
    fn other_controls_and_separators_are_escaped() {
        for (input, escaped) in [
            ("a\u{7f}b\n", "a\\u{7f}b\n"),
            ("a\u{85}b\n", "a\\u{85}b\n"),
            ("a\u{2028}b\n", "a\\u{2028}b\n"),
            ("a\0b", "a\\u{0}b"),
        ] {
            let out = escape_record(input.as_bytes(), true);
            assert_eq!(String::from_utf8_lossy(&out), escaped);
        }
        // Invalid UTF-8 becomes the replacement character rather than raw bytes.
        let out = escape_record(b"a\xffb\n", false);
        assert_eq!(String::from_utf8_lossy(&out), "a\u{fffd}b\n");
    }
}
