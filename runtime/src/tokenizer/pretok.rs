//! Pre-tokenizers: the regexes that byte-level BPE tokenizers split text with, written out by
//! hand (the runtime has no regex engine). Each `*_next` function returns the end of the one
//! match that starts at byte `i`, exactly as the leftmost-first regex would; the splitters
//! call them until the text is consumed.

use super::unicode_tables::RANGES;

/// The character classes the regexes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// `\p{L}`
    Letter,
    /// `\p{N}`
    Number,
    /// `\s` (the White_Space property)
    Space,
    /// anything else
    Other,
}

pub(crate) fn class(c: char) -> Class {
    let cp = c as u32;
    if cp < 0x80 {
        // ASCII fast path: most text is ASCII.
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            '\t' | '\n' | '\x0B' | '\x0C' | '\r' | ' ' => Class::Space,
            _ => Class::Other,
        };
    }
    match RANGES.binary_search_by(|&(lo, hi, _)| {
        if hi < cp {
            core::cmp::Ordering::Less
        } else if lo > cp {
            core::cmp::Ordering::Greater
        } else {
            core::cmp::Ordering::Equal
        }
    }) {
        Ok(i) => RANGES[i].2,
        Err(_) => Class::Other,
    }
}

/// Which split a byte-level BPE tokenizer applies before merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// No split: the whole segment is one piece.
    None,
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// Every `\p{N}` character is a piece of its own, then GPT-2 on the rest (SmolLM:
    /// `Digits(individual_digits=true)` then `ByteLevel`).
    Gpt2Digits,
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// Qwen2: the Llama 3 regex with `\p{N}` (one digit per piece) instead of `\p{N}{1,3}`.
    Qwen2,
    /// SentencePiece `Metaspace(split=true)`: a new piece starts at every space.
    SpaceSplit,
}

impl PreTokenizer {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => PreTokenizer::None,
            "gpt2" => PreTokenizer::Gpt2,
            "gpt2-digits" => PreTokenizer::Gpt2Digits,
            "llama3" => PreTokenizer::Llama3,
            "qwen2" => PreTokenizer::Qwen2,
            "space-split" => PreTokenizer::SpaceSplit,
            _ => return None,
        })
    }

    /// Calls `f` with each piece of `text`, in order; the pieces concatenate to `text`.
    pub fn split(self, text: &str, f: &mut impl FnMut(&str)) {
        match self {
            PreTokenizer::None => {
                if !text.is_empty() {
                    f(text)
                }
            }
            PreTokenizer::Gpt2 => split_with(text, gpt2_next, f),
            PreTokenizer::Gpt2Digits => {
                // Digits first: each number character alone, the runs between them go on to GPT-2.
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if class(c) == Class::Number {
                        split_with(&text[start..i], gpt2_next, f);
                        f(&text[i..i + c.len_utf8()]);
                        start = i + c.len_utf8();
                    }
                }
                split_with(&text[start..], gpt2_next, f);
            }
            PreTokenizer::Llama3 => split_with(text, |s, i| llama3_next(s, i, 3), f),
            PreTokenizer::Qwen2 => split_with(text, |s, i| llama3_next(s, i, 1), f),
            PreTokenizer::SpaceSplit => {
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if c == ' ' && i > start {
                        f(&text[start..i]);
                        start = i;
                    }
                }
                if start < text.len() {
                    f(&text[start..]);
                }
            }
        }
    }
}

fn split_with(text: &str, next: impl Fn(&str, usize) -> usize, f: &mut impl FnMut(&str)) {
    let mut i = 0;
    while i < text.len() {
        let end = next(text, i);
        debug_assert!(end > i && end <= text.len());
        // A match is never empty; the guard keeps a logic error from looping forever.
        let end = if end > i {
            end
        } else {
            i + char_at(text, i).len_utf8()
        };
        f(&text[i..end]);
        i = end;
    }
}

/// The char starting at byte `i` (`i` is a char boundary below `s.len()`).
fn char_at(s: &str, i: usize) -> char {
    s[i..].chars().next().unwrap_or('\0')
}

/// End of the run of characters of class `k` starting at `i`.
fn run_of(s: &str, i: usize, k: Class) -> usize {
    s[i..]
        .char_indices()
        .find(|&(_, c)| class(c) != k)
        .map_or(s.len(), |(j, _)| i + j)
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which holds `'`): the match length.
fn contraction(s: &str, i: usize, ignore_case: bool) -> Option<usize> {
    let rest = &s.as_bytes()[i + 1..];
    let lower = |k: usize| -> Option<u8> {
        let b = *rest.get(k)?;
        Some(if ignore_case {
            b.to_ascii_lowercase()
        } else {
            b
        })
    };
    match lower(0)? {
        b's' | b't' | b'm' | b'd' => Some(2),
        b'r' | b'v' if lower(1) == Some(b'e') => Some(3),
        b'l' if lower(1) == Some(b'l') => Some(3),
        _ => None,
    }
}

/// `\s+(?!\S)|\s+` at `i` (which holds whitespace): the whole run if it ends the text,
/// else all but its last character (which then joins the next word), but at least one.
fn whitespace_tail(s: &str, i: usize) -> usize {
    let mut last_start = i;
    for (j, c) in s[i..].char_indices() {
        if class(c) != Class::Space {
            let end = i + j;
            return if last_start > i { last_start } else { end };
        }
        last_start = i + j;
    }
    s.len()
}

/// One match of the GPT-2 regex starting at `i`.
pub(crate) fn gpt2_next(s: &str, i: usize) -> usize {
    let c = char_at(s, i);
    if c == '\'' {
        if let Some(n) = contraction(s, i, false) {
            return i + n;
        }
    }
    // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one class.
    let (j, cj) = if c == ' ' && i + 1 < s.len() {
        (i + 1, char_at(s, i + 1))
    } else {
        (i, c)
    };
    match class(cj) {
        Class::Space => whitespace_tail(s, i),
        k => run_of(s, j, k),
    }
}

/// One match of the Llama 3 regex (`max_digits` = 3) or Qwen2's (`max_digits` = 1) at `i`.
pub(crate) fn llama3_next(s: &str, i: usize, max_digits: usize) -> usize {
    let c = char_at(s, i);
    let kc = class(c);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c == '\'' {
        if let Some(n) = contraction(s, i, true) {
            return i + n;
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if kc == Class::Letter {
        return run_of(s, i, Class::Letter);
    }
    let after = i + c.len_utf8();
    if c != '\r'
        && c != '\n'
        && kc != Class::Number
        && after < s.len()
        && class(char_at(s, after)) == Class::Letter
    {
        return run_of(s, after, Class::Letter);
    }
    // \p{N}{1,max_digits}
    if kc == Class::Number {
        let mut end = i;
        for (n, (j, ch)) in s[i..].char_indices().enumerate() {
            if n == max_digits || class(ch) != Class::Number {
                break;
            }
            end = i + j + ch.len_utf8();
        }
        return end;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let j = if c == ' ' { after } else { i };
    if j < s.len() && class(char_at(s, j)) == Class::Other {
        let end = run_of(s, j, Class::Other);
        let newlines = s.as_bytes()[end..]
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        return end + newlines;
    }
    // \s*[\r\n]+ : up to and including the last newline of the whitespace run.
    let mut last_newline = None;
    for (k, ch) in s[i..].char_indices() {
        if class(ch) != Class::Space {
            break;
        }
        if ch == '\r' || ch == '\n' {
            last_newline = Some(i + k + 1);
        }
    }
    if let Some(end) = last_newline {
        return end;
    }
    // \s+(?!\S)|\s+
    whitespace_tail(s, i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn pieces(p: PreTokenizer, text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        // The pieces borrow `text`; collect their offsets and re-slice.
        let mut offs = Vec::new();
        let base = text.as_ptr() as usize;
        p.split(text, &mut |piece: &str| {
            let start = piece.as_ptr() as usize - base;
            offs.push((start, start + piece.len()));
        });
        for (a, b) in offs {
            v.push(&text[a..b]);
        }
        v
    }

    #[test]
    fn gpt2_regex() {
        assert_eq!(
            pieces(PreTokenizer::Gpt2, "Hello world's  end\n\n x1 22"),
            ["Hello", " world", "'s", " ", " end", "\n\n", " x", "1", " 22"]
        );
        assert_eq!(pieces(PreTokenizer::Gpt2, "   "), ["   "]);
        assert_eq!(pieces(PreTokenizer::Gpt2, "a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces(PreTokenizer::Gpt2, "(hi)!!"), ["(", "hi", ")!!"]);
    }

    #[test]
    fn digits_individual() {
        assert_eq!(
            pieces(PreTokenizer::Gpt2Digits, "year 2024 had"),
            ["year", " ", "2", "0", "2", "4", " had"]
        );
    }

    #[test]
    fn llama3_regex() {
        assert_eq!(
            pieces(PreTokenizer::Llama3, "I'M 12345 (hi)\n\n  x\ty"),
            ["I", "'M", " ", "123", "45", " (", "hi", ")\n\n", " ", " x", "\ty"]
        );
        assert_eq!(pieces(PreTokenizer::Qwen2, "12"), ["1", "2"]);
        assert_eq!(
            pieces(PreTokenizer::Llama3, "a \n\n b"),
            ["a", " \n\n", " b"]
        );
    }

    #[test]
    fn classes() {
        assert_eq!(class('é'), Class::Letter);
        assert_eq!(class('東'), Class::Letter);
        assert_eq!(class('٣'), Class::Number);
        assert_eq!(class('\u{3000}'), Class::Space);
        assert_eq!(class('🙂'), Class::Other);
        // Unicode 16.0 (HF tokenizers' Oniguruma 6.9.10): Cyrillic TJE, Garay, outlined digits.
        assert_eq!(class('\u{1C89}'), Class::Letter);
        assert_eq!(class('\u{10D4A}'), Class::Letter);
        assert_eq!(class('\u{1CCF0}'), Class::Number);
        // Unassigned in 16.0.
        assert_eq!(class('\u{323B0}'), Class::Other);
    }
}
