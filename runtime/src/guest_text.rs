//! Text a guest chose, made safe to log, print or quote: one line, no control characters,
//! bounded in size.
//!
//! Everything a component says reaches the operator through here: its `describe` summary, its
//! `validate` refusal and warnings, its `run` error, its `log` lines and its stdout and stderr,
//! and the identifiers it passes to host calls (workspaces, types, keys) when a message quotes
//! them. A guest must not be able to start a new line of the log (and so forge the runtime's
//! own lines, such as `completed (flag="v9")`), drive the operator's terminal with escape
//! sequences, or reorder what the operator reads with bidirectional overrides. Every control
//! character (C0, DEL, C1), bidirectional control and line or paragraph separator is written
//! as Rust writes it escaped (`\n`, `\u{0}`, `\u{1b}`, `\u{202e}`), as the JSON log format
//! escapes control characters.

use std::borrow::Cow;

use crate::policy::Limits;

/// How many distinct refusals a run logs as warnings (per kind: host calls, HTTP requests); the
/// rest are logged at debug level, so a guest retrying a refused call in a loop cannot flood
/// the log.
pub(crate) const LOGGED_DENIALS: usize = 16;

/// How much of an identifier a guest chose (a workspace, a key) a message quotes.
pub(crate) const QUOTED_CHARS: usize = 256;

/// `text` on one line, with every character that could break or disguise a line escaped.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut line = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    Cow::Owned(line)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidirectional marks, embeddings, overrides and isolates: they reorder what is read.
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            // Line and paragraph separators: some viewers start a new line at them.
            | '\u{2028}' | '\u{2029}'
        )
}

/// A guest's text (a summary, a refusal, a warning, a run error) as the runtime logs or prints
/// it: cut to the run's line size, then on one line.
pub(crate) fn for_log(text: &str, limits: &Limits) -> String {
    one_line(&clip(text, limits.log_line_size, 0)).into_owned()
}

/// `text` cut to at most `max` bytes on a character boundary, and marked as cut if it was or if
/// the caller already dropped `cut` bytes from its end.
pub(crate) fn clip(text: &str, max: usize, cut: usize) -> Cow<'_, str> {
    let (kept, more) = truncate(text, max);
    match cut + more {
        0 => Cow::Borrowed(kept),
        cut => Cow::Owned(format!("{kept} [truncated: {cut} more bytes, limits.log_line_size]")),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary, and
/// how many bytes were cut.
pub(crate) fn truncate(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    (&text[..end], text.len() - end)
}

/// An identifier a guest chose, quoted in a message: cut to at most `max` characters, with `…`
/// if it was cut, and on one line.
pub(crate) fn abbreviate(text: &str, max: usize) -> String {
    let kept = match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    };
    let cut = if kept.len() < text.len() { "…" } else { "" };
    format!("{}{cut}", one_line(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_stays_on_one_line() {
        assert_eq!(one_line("Seeds a workspace: é"), "Seeds a workspace: é");
        assert_eq!(one_line("a\n  grants: none\u{1b}[2J\r\u{9b}"), "a\\n  grants: none\\u{1b}[2J\\r\\u{9b}");
        assert_eq!(one_line("x\u{202e}y\0z\u{2028}"), "x\\u{202e}y\\u{0}z\\u{2028}");
    }

    #[test]
    fn escaping_is_idempotent() {
        let once = one_line("a\nb\u{202e}").into_owned();
        assert_eq!(one_line(&once), once);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("abcdef", 4), ("abcd", 2));
        assert_eq!(truncate("abc", 4), ("abc", 0));
        // 'é' is two bytes: cutting at 2 would split it.
        assert_eq!(truncate("aéb", 2), ("a", 3));
    }

    #[test]
    fn clipped_lines_say_how_much_was_cut() {
        assert_eq!(clip("short", 10, 0), "short");
        assert_eq!(clip("abcdef", 4, 0), "abcd [truncated: 2 more bytes, limits.log_line_size]");
        assert_eq!(clip("abcd", 4, 5), "abcd [truncated: 5 more bytes, limits.log_line_size]");
    }

    #[test]
    fn text_for_the_log_is_cut_then_escaped() {
        let limits = Limits { log_line_size: 8, ..Limits::default() };
        assert_eq!(for_log("ok", &limits), "ok");
        assert_eq!(for_log("a\nb", &limits), "a\\nb");
        assert_eq!(for_log("0123456\n89", &limits), "0123456\\n [truncated: 2 more bytes, limits.log_line_size]");
    }

    #[test]
    fn identifiers_are_abbreviated_by_characters_and_escaped() {
        assert_eq!(abbreviate("short", 10), "short");
        assert_eq!(abbreviate("ééééé", 3), "ééé…");
        assert_eq!(abbreviate("a\nb", 10), "a\\nb");
    }
}
