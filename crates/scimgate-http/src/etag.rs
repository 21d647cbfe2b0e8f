//! Weak ETags over the resource version (`W/"3"`), and the `If-Match` / `If-None-Match`
//! preconditions of RFC 9110 §13.1 as SCIM uses them (RFC 7644 §3.14).

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// A parsed precondition header: `*`, or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    Any,
    Versions(Vec<Option<i64>>),
}

impl Precondition {
    pub fn if_match(req: &HttpRequest) -> Option<Self> {
        Self::from_header(req, header::IF_MATCH)
    }

    pub fn if_none_match(req: &HttpRequest) -> Option<Self> {
        Self::from_header(req, header::IF_NONE_MATCH)
    }

    fn from_header(req: &HttpRequest, name: HeaderName) -> Option<Self> {
        let text: Vec<&str> = req
            .headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect();
        if text.is_empty() {
            return None;
        }
        Some(Self::from_tags(&text))
    }

    /// The precondition a Bulk operation's `version` states, as `If-Match` would.
    pub fn from_version(version: &str) -> Self {
        Self::from_tags(&[version])
    }

    fn from_tags(text: &[&str]) -> Self {
        let tags: Vec<&str> = text
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if tags.contains(&"*") {
            return Precondition::Any;
        }
        Precondition::Versions(tags.into_iter().map(parse_tag).collect())
    }

    /// Weak comparison: `W/"3"` and `"3"` both name version 3.
    pub fn matches(&self, version: i64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Versions(v) => v.contains(&Some(version)),
        }
    }
}

fn parse_tag(tag: &str) -> Option<i64> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn parses_weak_strong_lists_and_star() {
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, r#"W/"3", "4""#))
            .to_http_request();
        let p = Precondition::if_match(&req).expect("present");
        assert!(p.matches(3) && p.matches(4) && !p.matches(5));
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "*"))
            .to_http_request();
        assert_eq!(Precondition::if_match(&req), Some(Precondition::Any));
        let req = TestRequest::default()
            .insert_header((header::IF_MATCH, "garbage"))
            .to_http_request();
        assert!(!Precondition::if_match(&req).expect("present").matches(1));
        assert_eq!(
            Precondition::if_match(&TestRequest::default().to_http_request()),
            None
        );
        assert_eq!(etag(7), "W/\"7\"");
    }
}
