//! Query parameters and the list endpoints (RFC 7644 §3.4.2): filter, paging, projection.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use scimgate_model::{ResourceType, ScimError, filter};
use scimgate_store::ListQuery;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::render::{projection, resource_json, scim_base, scim_json};
use crate::resources::blocking;
use crate::state::AppState;

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The query string as name/value pairs; names are matched case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, ScimError> {
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
        let parsed = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| QueryParams(q.into_inner()))
            .map_err(|e| ScimError::invalid_syntax(format!("malformed query string: {e}")).into());
        std::future::ready(parsed)
    }
}

pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    req: HttpRequest,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let rt = **rt;
    let filter = query
        .get("filter")
        .map(|f| filter::parse(rt, f))
        .transpose()?;
    // RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0.
    let start_index = query.integer("startIndex")?.unwrap_or(1).max(1) as u64;
    let max = state.settings.max_results;
    let count = query
        .integer("count")?
        .map_or(max, |c| (c.max(0) as u64).min(max));
    let projection = projection(rt, &query)?;
    let relation = match rt {
        ResourceType::Group => "members",
        ResourceType::User => "groups",
    };
    let q = ListQuery {
        filter,
        start_index,
        count,
        with_relations: projection.wants(relation),
    };
    let store = state.store.clone();
    let tenant = principal.tenant;
    let page = blocking(move || Ok(store.list(&tenant, rt, &q)?)).await?;

    let base = scim_base(&req, &state.settings);
    let resources: Vec<Value> = page
        .resources
        .iter()
        .map(|r| {
            let mut body = resource_json(r, &base);
            projection.apply(&mut body);
            Value::Object(body)
        })
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": page.total_results,
            "itemsPerPage": resources.len(),
            "startIndex": start_index,
            "Resources": resources,
        }),
    ))
}
