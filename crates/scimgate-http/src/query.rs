//! The query string of a SCIM request as name/value pairs, names matched
//! case-insensitively (RFC 7644 §3.4.2 parameters are case-insensitive).

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use scimgate_model::ScimError;

use crate::error::ApiError;

/// The query string as name/value pairs; names are matched case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// The pairs of a query string (`a=1&b=2`, percent-decoded).
    pub fn parse(query: &str) -> Result<Self, ScimError> {
        web::Query::<Vec<(String, String)>>::from_query(query)
            .map(|q| QueryParams(q.into_inner()))
            .map_err(|e| ScimError::invalid_syntax(format!("malformed query string: {e}")))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// Every value of `name`, in the order sent.
    pub fn all<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ScimError> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::invalid_value(format!(
                        "query parameter '{name}' must be an integer, got '{v}'"
                    ))
                })
            })
            .transpose()
    }
}

impl FromRequest for QueryParams {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(QueryParams::parse(req.query_string()).map_err(ApiError::from))
    }
}
