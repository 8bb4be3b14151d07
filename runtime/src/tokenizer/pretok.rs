//! Pre-tokenizers: the regexes that byte-level BPE tokenizers split text with, written out by
//! hand (the runtime has no regex engine). Each `*_next` function returns the end of the one
//! match that starts at byte `i`, exactly as the leftmost-first regex would; the splitters
//! call them until the text is consumed.

use super::unicode_tables::{CASES, RANGES};

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

/// The kinds of [`CASES`] ranges: what the o200k regex needs beyond [`Class`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    /// `\p{Lu}` or `\p{Lt}`
    Upper = 0,
    /// `\p{Ll}`
    Lower = 1,
    /// Pairs of one letter in two cases (Ā ā Ă ă ...): upper at even code points, lower at odd.
    UpperEven = 2,
    /// The same with upper at odd code points, lower at even.
    UpperOdd = 3,
    /// `\p{M}`: not a letter (`Other` to [`class`]), but in both of o200k's letter sets.
    Mark = 4,
}

/// One [`CASES`] entry, `first << 11 | (last - first) << 3 | case`: 21 bits of code point,
/// 8 of length, 3 of case (a compile error if a range does not fit).
pub(crate) const fn case_range(first: u32, last: u32, case: Case) -> u32 {
    assert!(first <= last && last - first < 256 && last <= 0x10FFFF);
    (first << 11) | ((last - first) << 3) | case as u32
}

/// Which of the o200k regex's two letter sets hold a character: "upper"
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` and "lower" `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LetterSets {
    /// Lu, Lt
    Upper,
    /// Ll
    Lower,
    /// Lm, Lo, M
    Both,
    /// everything else
    Neither,
}

impl LetterSets {
    fn upper(self) -> bool {
        matches!(self, LetterSets::Upper | LetterSets::Both)
    }

    fn lower(self) -> bool {
        matches!(self, LetterSets::Lower | LetterSets::Both)
    }
}

fn letter_sets(c: char) -> LetterSets {
    let cp = c as u32;
    if cp < 0x80 {
        return match c {
            'A'..='Z' => LetterSets::Upper,
            'a'..='z' => LetterSets::Lower,
            _ => LetterSets::Neither,
        };
    }
    let i = CASES.partition_point(|&e| e >> 11 <= cp);
    if i > 0 {
        let e = CASES[i - 1];
        if cp - (e >> 11) <= (e >> 3) & 0xFF {
            let upper_parity = match e & 7 {
                x if x == Case::Upper as u32 => return LetterSets::Upper,
                x if x == Case::Lower as u32 => return LetterSets::Lower,
                x if x == Case::UpperEven as u32 => 0,
                x if x == Case::UpperOdd as u32 => 1,
                _ => return LetterSets::Both,
            };
            return if cp % 2 == upper_parity {
                LetterSets::Upper
            } else {
                LetterSets::Lower
            };
        }
    }
    // Neither cased nor a mark: a letter here is Lm or Lo.
    if class(c) == Class::Letter {
        LetterSets::Both
    } else {
        LetterSets::Neither
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
    /// o200k (GPT-4o, Phi-4-mini): words split at case changes, contractions kept with them:
    /// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
    /// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
    /// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    O200k,
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
            "o200k" => PreTokenizer::O200k,
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
            PreTokenizer::O200k => split_with(text, o200k_next, f),
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

/// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which holds `'`): the match length. Ignoring case is
/// Oniguruma's: `S` for `s` and so on, and `ſ` (U+017F, which case-folds to `s`) for `s`.
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
        0xC5 if ignore_case && rest.get(1) == Some(&0xBF) => Some(3),
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
    rest_next(s, i, max_digits, b"\r\n")
}

/// The alternatives Llama 3 and o200k share after their letter ones, at `i`:
/// `\p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[<tail>]*|\s*[\r\n]+|\s+(?!\S)|\s+`, where
/// `tail` holds the ASCII characters that may follow punctuation.
fn rest_next(s: &str, i: usize, max_digits: usize, tail: &[u8]) -> usize {
    let c = char_at(s, i);
    let kc = class(c);
    let after = i + c.len_utf8();
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
    // ` ?[^\s\p{L}\p{N}]+[<tail>]*`
    let j = if c == ' ' { after } else { i };
    if j < s.len() && class(char_at(s, j)) == Class::Other {
        let end = run_of(s, j, Class::Other);
        let tail_len = s.as_bytes()[end..]
            .iter()
            .take_while(|b| tail.contains(b))
            .count();
        return end + tail_len;
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

/// One match of the o200k regex at `i`.
pub(crate) fn o200k_next(s: &str, i: usize) -> usize {
    let c = char_at(s, i);
    let kc = class(c);
    // The first two alternatives, `P?U*L+C?` and `P?U+L*C?` (P the prefix class
    // `[^\r\n\p{L}\p{N}]`, U and L the upper and lower letter sets, C the contractions): each
    // tries `c` as the prefix first, then the letters from `c` itself (which only a mark, in P
    // and in both letter sets, can start), before the next alternative is tried.
    let prefix = c != '\r' && c != '\n' && kc != Class::Letter && kc != Class::Number;
    let after = i + c.len_utf8();
    for word in [o200k_lower_word, o200k_upper_word] {
        if prefix {
            if let Some(end) = word(s, after) {
                return end;
            }
        }
        if let Some(end) = word(s, i) {
            return end;
        }
    }
    rest_next(s, i, 3, b"\r\n/")
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// at `j`: the end of its match, if it has one.
fn o200k_lower_word(s: &str, j: usize) -> Option<usize> {
    // U*, greedy: the whole run of upper-set characters, noting the end of the last one that
    // is in the lower set too.
    let mut k = j;
    let mut last_both = None;
    let mut stop = LetterSets::Neither;
    while k < s.len() {
        let ch = char_at(s, k);
        let sets = letter_sets(ch);
        if !sets.upper() {
            stop = sets;
            break;
        }
        k += ch.len_utf8();
        if sets == LetterSets::Both {
            last_both = Some(k);
        }
    }
    let end = if stop.lower() {
        // L+ right after the run (a lowercase letter), greedy.
        letters_while(s, k, LetterSets::lower)
    } else {
        // U* gives back characters until L+ can match: the last one in both sets is all of
        // L+ (what follows it in the run is uppercase), or there is no match.
        last_both?
    };
    Some(with_contraction(s, end))
}

/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// at `j`: the end of its match, if it has one.
fn o200k_upper_word(s: &str, j: usize) -> Option<usize> {
    let k = letters_while(s, j, LetterSets::upper);
    if k == j {
        return None;
    }
    Some(with_contraction(s, letters_while(s, k, LetterSets::lower)))
}

/// End of the run of characters from `i` whose letter sets satisfy `f`.
fn letters_while(s: &str, i: usize, f: fn(LetterSets) -> bool) -> usize {
    s[i..]
        .char_indices()
        .find(|&(_, c)| !f(letter_sets(c)))
        .map_or(s.len(), |(j, _)| i + j)
}

/// `end` plus an optional `(?i:'s|'t|'re|'ve|'m|'ll|'d)` there.
fn with_contraction(s: &str, end: usize) -> usize {
    if s.as_bytes().get(end) == Some(&b'\'') {
        if let Some(n) = contraction(s, end, true) {
            return end + n;
        }
    }
    end
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
        // ſ (U+017F) case-folds to s: Oniguruma's (?i:'s) takes it.
        assert_eq!(
            pieces(PreTokenizer::Llama3, "x'\u{17F}x"),
            ["x", "'\u{17F}", "x"]
        );
    }

    /// Expected pieces from HF tokenizers 0.23.3's `Split(Regex(o200k), "isolated")`.
    #[test]
    fn o200k_regex() {
        let o = |t| pieces(PreTokenizer::O200k, t);
        // Case changes split words; an uppercase run keeps the lowercase run after it.
        assert_eq!(o("CamelCaseWord"), ["Camel", "Case", "Word"]);
        assert_eq!(
            o("HTTPServer's XMLHttpRequest"),
            ["HTTPServer's", " XMLHttp", "Request"]
        );
        // Contractions, case-insensitive, stay with the word before them, after either run.
        assert_eq!(
            o("I'M don't DON'T they'LL We'Ve"),
            ["I'M", " don't", " DON'T", " they'LL", " We'Ve"]
        );
        assert_eq!(
            o("HELLO'S hello's Hello'S"),
            ["HELLO'S", " hello's", " Hello'S"]
        );
        // A contraction alone is punctuation, then a word.
        assert_eq!(o("'s 'S"), ["'s", " '", "S"]);
        // ſ (U+017F) case-folds to s.
        assert_eq!(o("x'\u{17F}x"), ["x'\u{17F}", "x"]);
        // Marks are in both letter sets (not \p{L}); Lm, Lo too; Lt is upper.
        assert_eq!(o("e\u{301}X\u{301}y"), ["e\u{301}", "X\u{301}y"]);
        assert_eq!(o("\u{301}HELLO"), ["\u{301}", "HELLO"]);
        assert_eq!(o("\u{301}'S"), ["\u{301}'S"]);
        assert_eq!(o("東京ABC abc東京"), ["東京", "ABC", " abc東京"]);
        assert_eq!(o("\u{1C5}emal \u{1C5}"), ["\u{1C5}emal", " \u{1C5}"]);
        assert_eq!(o("\u{2B0}ello"), ["\u{2B0}ello"]);
        assert_eq!(o("ÀÉÎ õü ĀāĂă"), ["ÀÉÎ", " õü", " Āā", "Ăă"]);
        // Digits by three.
        assert_eq!(o("12345678 x1234"), ["123", "456", "78", " x", "123", "4"]);
        // Punctuation takes the newlines and slashes after it.
        assert_eq!(
            o(" // a//b !/\n/c"),
            [" //", " a", "//", "b", " !/\n/", "c"]
        );
        // Whitespace: newlines end a run, the last space joins the next word.
        assert_eq!(o("a\n\n  b"), ["a", "\n\n", " ", " b"]);
        assert_eq!(o("  Hello  \n"), [" ", " Hello", "  \n"]);
        assert_eq!(o("\t\tx"), ["\t", "\tx"]);
        assert_eq!(o("a\r\n\r\nb"), ["a", "\r\n\r\n", "b"]);
    }

    #[test]
    fn letter_sets_of_o200k() {
        use LetterSets::*;
        for (c, want) in [
            ('A', Upper),
            ('z', Lower),
            ('1', Neither),
            ('\'', Neither),
            ('Ā', Upper),
            ('ā', Lower),
            ('ß', Lower),
            ('\u{17F}', Lower),
            ('\u{1C5}', Upper),  // ǅ, Lt
            ('\u{1F88}', Upper), // ᾈ, Lt
            ('\u{2B0}', Both),   // ʰ, Lm
            ('東', Both),        // Lo
            ('\u{301}', Both),   // Mn
            ('\u{903}', Both),   // Mc
            ('\u{20DD}', Both),  // Me
            ('٣', Neither),
            ('\u{3000}', Neither),
            ('🙂', Neither),
            ('\u{1E921}', Upper), // Adlam, Lu
            ('\u{1E943}', Lower), // Adlam, Ll
            ('\u{10D50}', Upper), // Garay (Unicode 16), Lu
            ('\u{10D70}', Lower), // Garay, Ll
        ] {
            assert_eq!(letter_sets(c), want, "{c:?}");
        }
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
