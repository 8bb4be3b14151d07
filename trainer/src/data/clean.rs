//! Cleanup of control characters and whitespace.
//!
//! - CRLF and lone CR become LF; U+2028/U+2029 become LF.
//! - Control characters (Cc) other than LF and TAB, the BOM and zero-width characters
//!   (U+200B..U+200D, U+2060) are removed.
//! - Other Unicode spaces (NBSP, en space, ideographic space, ...) become ' '.
//! - Trailing whitespace on each line is removed, runs of 3+ newlines become 2 (one blank
//!   line), and leading/trailing blank lines of a document are dropped.

/// Returns the cleaned text and the number of characters removed or replaced.
pub fn clean(text: &str) -> (String, usize) {
    let mut changed = 0usize;
    let mut s = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                changed += 1;
                s.push('\n');
            }
            '\n' | '\t' => s.push(c),
            '\u{2028}' | '\u{2029}' => {
                changed += 1;
                s.push('\n');
            }
            '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' => changed += 1,
            c if c.is_control() => changed += 1,
            c if c != ' ' && c.is_whitespace() => {
                changed += 1;
                s.push(' ');
            }
            c => s.push(c),
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut newlines = 0usize;
    for line in s.split('\n') {
        let trimmed = line.trim_end();
        changed += line.len() - trimmed.len();
        if trimmed.is_empty() {
            newlines += 1;
            continue;
        }
        if !out.is_empty() {
            let n = newlines.clamp(1, 2);
            changed += newlines.saturating_sub(n);
            out.extend(std::iter::repeat_n('\n', n));
        }
        newlines = 1;
        out.push_str(trimmed);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_controls_and_whitespace() {
        let (s, n) = clean("\u{feff}\n\nHello\u{0}  \r\nworld\u{a0}!\r\n\n\n\n\tEnd\u{200b}  \n\n");
        assert_eq!(s, "Hello\nworld !\n\n\tEnd\n");
        assert!(n > 0);
        assert_eq!(clean("plain\n\ntext\n"), ("plain\n\ntext\n".to_string(), 0));
        assert_eq!(clean(" \n\t\n").0, "");
    }
}
