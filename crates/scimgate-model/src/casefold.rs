//! Unicode case folding for case-insensitive keys (`userName` uniqueness, `caseExact: false`).
//! Done in Rust so that every storage backend folds exactly alike, beyond ASCII.

use unicode_normalization::UnicodeNormalization;

/// The comparison key of `s`: a Unicode canonical caseless match (Unicode §3.13, D145:
/// decompose, fold, then compose to NFC), so `Émile` and `émile`, `STRASSE` and `straße`,
/// and `José` typed precomposed (NFC) or decomposed (NFD) give the same key. Only keys
/// are normalised; what the client sent is stored as sent.
pub fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        // ASCII folds to lower case and is already in every normalisation form.
        return s.to_ascii_lowercase();
    }
    let decomposed: String = s.nfd().collect();
    caseless::default_case_fold_str(&decomposed).nfc().collect()
}

/// True when `a` and `b` are equal under Unicode case folding.
pub fn eq_fold(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || fold_case(a) == fold_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_beyond_ascii() {
        assert_eq!(fold_case("Émile"), fold_case("émile"));
        assert_eq!(fold_case("STRASSE"), fold_case("straße"));
        assert_eq!(fold_case("ΣΊΣΥΦΟΣ"), fold_case("σίσυφος"));
        assert_ne!(fold_case("alice"), fold_case("alicé"));
    }

    #[test]
    fn canonically_equivalent_forms_get_one_key() {
        let nfc = "Jos\u{e9}@example.com";
        let nfd = "Jose\u{301}@example.com";
        assert_ne!(nfc, nfd);
        assert_eq!(fold_case(nfc), fold_case(nfd));
        assert_eq!(fold_case(nfd), "jos\u{e9}@example.com", "keys are composed");
        // Folding can expose a composable sequence: U+0345 folds to ι after the base.
        assert_eq!(
            fold_case("\u{3b1}\u{345}\u{301}"),
            fold_case("\u{3ac}\u{345}")
        );
        assert_eq!(fold_case("ABC"), "abc");
    }

    #[test]
    fn eq_fold_compares_folded() {
        assert!(eq_fold("UserName", "username"));
        assert!(eq_fold("Émile", "éMILE"));
        assert!(!eq_fold("user", "users"));
    }
}
