//! GPT-2 pre-tokenization, the regex of Hugging Face's ByteLevel pre-tokenizer written out:
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//!
//! \p{N} is `char::is_numeric`, \s is `char::is_whitespace`, and \p{L} is
//! `is_alphabetic() && !is_numeric()`, which differs from \p{L} only for the few combining
//! marks with the Other_Alphabetic property (those count as letters here).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_numeric() {
        Class::Number
    } else if c.is_alphabetic() {
        Class::Letter
    } else {
        Class::Other
    }
}

/// Splits `text` into pre-tokens (slices that concatenate back to `text`).
pub fn pretokenize(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_byte = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let c = chars[i].1;
        // Contractions.
        if c == '\'' {
            let rest = &text[chars[i].0 + 1..];
            let len = ["s", "t", "m", "d", "re", "ve", "ll"]
                .iter()
                .find(|s| rest.starts_with(*s))
                .map(|s| s.len());
            if let Some(len) = len {
                i += 1 + len;
                out.push(&text[chars[start].0..end_byte(i)]);
                continue;
            }
        }
        // ` ?X+` for letters, numbers and other symbols.
        let mut j = i;
        if c == ' ' && i + 1 < chars.len() && class(chars[i + 1].1) != Class::Space {
            j = i + 1;
        }
        let k = class(chars[j].1);
        if k != Class::Space {
            while j < chars.len() && class(chars[j].1) == k {
                j += 1;
            }
            i = j;
            out.push(&text[chars[start].0..end_byte(i)]);
            continue;
        }
        // Whitespace: `\s+(?!\S)` leaves the last space for the next word; else `\s+`.
        let mut j = i;
        while j < chars.len() && class(chars[j].1) == Class::Space {
            j += 1;
        }
        if j < chars.len() && j - i > 1 {
            j -= 1;
        }
        i = j;
        out.push(&text[chars[start].0..end_byte(i)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_gpt2() {
        assert_eq!(
            pretokenize("Hello world's  end!!\n\nNo 42x"),
            vec!["Hello", " world", "'s", " ", " end", "!!", "\n", "\n", "No", " 42", "x"]
        );
        assert_eq!(pretokenize("a   \n b"), vec!["a", "   \n", " b"]);
        assert_eq!(pretokenize("x  "), vec!["x", "  "]);
        assert_eq!(
            pretokenize("I'LL don't 'x"),
            vec!["I", "'", "LL", " don", "'t", " '", "x"]
        );
        assert_eq!(pretokenize("héllo wörld"), vec!["héllo", " wörld"]);
        assert_eq!(pretokenize(""), Vec::<&str>::new());
    }
}
