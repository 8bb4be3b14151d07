//! Unicode normalization (NFC or NFKC) via the `unicode-normalization` crate.
use unicode_normalization::UnicodeNormalization;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// Canonical composition: keeps compatibility characters (ligatures, full-width forms).
    Nfc,
    /// Compatibility composition: folds ligatures, full-width and super/subscript forms.
    Nfkc,
    None,
}

impl std::str::FromStr for Normalization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "nfc" => Ok(Normalization::Nfc),
            "nfkc" => Ok(Normalization::Nfkc),
            "none" => Ok(Normalization::None),
            _ => Err(format!(
                "unknown normalization `{s}` (expected nfc, nfkc or none)"
            )),
        }
    }
}

pub fn normalize(text: &str, mode: Normalization) -> String {
    match mode {
        Normalization::Nfc => text.nfc().collect(),
        Normalization::Nfkc => text.nfkc().collect(),
        Normalization::None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_composes_and_nfkc_folds() {
        let decomposed = "e\u{301}"; // e + combining acute
        assert_eq!(normalize(decomposed, Normalization::Nfc), "\u{e9}");
        assert_eq!(normalize("\u{fb01}x", Normalization::Nfc), "\u{fb01}x"); // fi ligature kept
        assert_eq!(normalize("\u{fb01}x", Normalization::Nfkc), "fix");
        assert_eq!(normalize("\u{ff21}", Normalization::Nfkc), "A"); // full-width A
        assert_eq!(normalize(decomposed, Normalization::None), decomposed);
    }
}
