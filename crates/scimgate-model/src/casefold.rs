//! Unicode case folding for case-insensitive keys (`userName` uniqueness, `caseExact: false`).
//! Done in Rust so that every storage backend folds exactly alike, beyond ASCII.

/// Folds `s` with Unicode default case folding, so `Émile` and `émile` (and `STRASSE` and
/// `straße`) give the same key.
pub fn fold_case(s: &str) -> String {
    caseless::default_case_fold_str(s)
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
    fn eq_fold_compares_folded() {
        assert!(eq_fold("UserName", "username"));
        assert!(eq_fold("Émile", "éMILE"));
        assert!(!eq_fold("user", "users"));
    }
}
