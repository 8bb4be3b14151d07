//! GPT-2's reversible byte → printable character map (`bytes_to_unicode`): printable
//! Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards, in byte order.

/// The character each byte is shown as in vocabularies and merges.
pub fn byte_to_char() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let c = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        out[b as usize] = char::from_u32(c).expect("valid scalar");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_gpt2_table() {
        let t = super::byte_to_char();
        assert_eq!(t[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(t[b'\n' as usize], '\u{10a}'); // Ċ
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], '\u{100}');
        let mut s: Vec<char> = t.to_vec();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 256);
    }
}
