//! Build logs as HTML: text escaped, ANSI SGR colours (the 16 basic ones, bold, dim, italic, underline)
//! as `<span class>`; every other escape sequence and control character dropped. A log arrives in
//! chunks (a live log in the agent's batches), so the renderer keeps what a chunk cut in half: an
//! unfinished escape sequence, an unfinished UTF-8 character, the open style.

use std::fmt::Write;

/// The style in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn classes(&self) -> String {
        let mut out = Vec::new();
        if let Some(c) = self.fg {
            out.push(format!("f{c}"));
        }
        if let Some(c) = self.bg {
            out.push(format!("b{c}"));
        }
        for (on, name) in [(self.bold, "bo"), (self.dim, "dm"), (self.italic, "it"), (self.underline, "un")] {
            if on {
                out.push(name.to_owned());
            }
        }
        out.join(" ")
    }

    /// Applies one SGR sequence's parameters (`1;31`).
    fn apply(&mut self, params: &str) {
        let mut codes =
            params.split([';', ':']).map(|p| if p.is_empty() { Some(0) } else { p.parse::<u32>().ok() });
        while let Some(code) = codes.next() {
            match code {
                Some(0) => *self = Style::default(),
                Some(1) => self.bold = true,
                Some(2) => self.dim = true,
                Some(3) => self.italic = true,
                Some(4) => self.underline = true,
                Some(22) => (self.bold, self.dim) = (false, false),
                Some(23) => self.italic = false,
                Some(24) => self.underline = false,
                Some(c @ 30..=37) => self.fg = Some((c - 30) as u8),
                Some(39) => self.fg = None,
                Some(c @ 40..=47) => self.bg = Some((c - 40) as u8),
                Some(49) => self.bg = None,
                Some(c @ 90..=97) => self.fg = Some((c - 90 + 8) as u8),
                Some(c @ 100..=107) => self.bg = Some((c - 100 + 8) as u8),
                // 256 colours and true colour: their arguments are skipped, the colour is not shown.
                Some(38 | 48) => match codes.next() {
                    Some(Some(5)) => {
                        codes.next();
                    }
                    Some(Some(2)) => {
                        codes.next();
                        codes.next();
                        codes.next();
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

/// Renders a log, chunk by chunk, as HTML for a `<pre>`.
#[derive(Debug, Default)]
pub struct AnsiHtml {
    /// Bytes of an unfinished escape sequence or UTF-8 character at the end of the last chunk.
    pending: Vec<u8>,
    style: Style,
    /// A `<span>` is open (with `style`).
    open: bool,
}

/// The longest escape sequence kept across chunks; a longer one is dropped.
const MAX_SEQUENCE: usize = 256;

impl AnsiHtml {
    pub fn new() -> Self {
        Self::default()
    }

    /// The HTML of the next chunk (spans may stay open: [`AnsiHtml::finish`] closes them).
    pub fn push(&mut self, chunk: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(chunk);
        let mut out = String::with_capacity(bytes.len() + 16);
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                0x1b => match sequence_end(&bytes[i..]) {
                    Sequence::Complete(len) => {
                        let seq = &bytes[i..i + len];
                        if seq.len() >= 3 && seq[1] == b'[' && seq[len - 1] == b'm' {
                            let params = String::from_utf8_lossy(&seq[2..len - 1]).into_owned();
                            let mut style = self.style;
                            style.apply(&params);
                            self.set_style(style, &mut out);
                        }
                        i += len;
                    }
                    Sequence::Unfinished if bytes.len() - i <= MAX_SEQUENCE => {
                        self.pending = bytes[i..].to_vec();
                        return out;
                    }
                    Sequence::Unfinished => i = bytes.len(),
                },
                b'\n' | b'\t' => {
                    out.push(bytes[i] as char);
                    i += 1;
                }
                c if c < 0x20 || c == 0x7f => i += 1,
                _ => {
                    // A run of text up to the next control byte.
                    let end =
                        bytes[i..].iter().position(|&b| b < 0x20 || b == 0x7f).map_or(bytes.len(), |p| i + p);
                    let run = &bytes[i..end];
                    let valid = match std::str::from_utf8(run) {
                        Ok(s) => s.len(),
                        Err(e) if e.error_len().is_none() && end == bytes.len() => e.valid_up_to(),
                        Err(_) => run.len(),
                    };
                    escape_into(&String::from_utf8_lossy(&run[..valid]), &mut out);
                    if valid < run.len() {
                        // An unfinished UTF-8 character at the very end: the next chunk completes it.
                        self.pending = run[valid..].to_vec();
                        return out;
                    }
                    i = end;
                }
            }
        }
        out
    }

    /// Closes what is open (and renders what an unfinished end left).
    pub fn finish(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        let mut out = String::new();
        if !pending.is_empty() && pending[0] != 0x1b {
            escape_into(&String::from_utf8_lossy(&pending), &mut out);
        }
        if self.open {
            out.push_str("</span>");
            self.open = false;
        }
        out
    }

    fn set_style(&mut self, style: Style, out: &mut String) {
        if style == self.style {
            return;
        }
        if self.open {
            out.push_str("</span>");
            self.open = false;
        }
        self.style = style;
        if style != Style::default() {
            let _ = write!(out, "<span class=\"{}\">", style.classes());
            self.open = true;
        }
    }
}

/// A whole log as HTML.
pub fn to_html(log: &[u8]) -> String {
    let mut r = AnsiHtml::new();
    let mut out = r.push(log);
    out.push_str(&r.finish());
    out
}

enum Sequence {
    Complete(usize),
    Unfinished,
}

/// The length of the escape sequence at the start of `b` (which starts with ESC): CSI (`ESC [ ... final`),
/// OSC (`ESC ] ... BEL` or `ESC ] ... ESC \`), or a two-byte escape.
fn sequence_end(b: &[u8]) -> Sequence {
    match b.get(1) {
        None => Sequence::Unfinished,
        Some(b'[') => match b[2..].iter().position(|c| (0x40..=0x7e).contains(c)) {
            Some(p) => Sequence::Complete(p + 3),
            None => Sequence::Unfinished,
        },
        Some(b']') => {
            for (p, w) in b.windows(2).enumerate().skip(2) {
                if w[0] == 0x07 {
                    return Sequence::Complete(p + 1);
                }
                if w == [0x1b, b'\\'] {
                    return Sequence::Complete(p + 2);
                }
            }
            if b.last() == Some(&0x07) {
                return Sequence::Complete(b.len());
            }
            Sequence::Unfinished
        }
        Some(_) => Sequence::Complete(2),
    }
}

/// HTML-escapes text.
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_classes_and_text_is_escaped() {
        assert_eq!(
            to_html(b"\x1b[1;31merror:\x1b[0m <b>&\n"),
            "<span class=\"f1 bo\">error:</span> &lt;b&gt;&amp;\n"
        );
        assert_eq!(to_html(b"\x1b[92mok\x1b[39m"), "<span class=\"f10\">ok</span>");
        // Cursor moves, OSC titles, 256 colours and control characters vanish.
        assert_eq!(to_html(b"a\x1b[2K\x1b]0;title\x07b\x1b[38;5;200mc\r\x08"), "abc");
    }

    #[test]
    fn a_chunk_may_cut_a_sequence_or_a_character() {
        let log = "\x1b[32m==> Making package: é\x1b[0m\n".as_bytes();
        let whole = to_html(log);
        for cut in 0..log.len() {
            let mut r = AnsiHtml::new();
            let mut out = r.push(&log[..cut]);
            out.push_str(&r.push(&log[cut..]));
            out.push_str(&r.finish());
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn any_bytes_render_without_panic_and_spans_balance() {
        let mut seed = 7u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    [0x1b, b'[', b'1', b';', b'3', b'm', b'\n', 0xc3, 0xa9, b'<', (seed >> 33) as u8]
                        [(seed >> 60) as usize % 11]
                })
                .collect();
            let html = to_html(&bytes);
            assert_eq!(html.matches("<span").count(), html.matches("</span>").count(), "{bytes:?}");
            assert!(!html.contains('\x1b') && !html.contains("<b"), "{html}");
        }
    }
}
