//! Listing and searching (RFC 7644 §3.4.2, §3.4.3, RFC 9865): filter, sort, index and
//! cursor paging, projection, for `GET /Users`, `POST /Users/.search` and `POST /.search`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scimgate_model::projection::Projection;
use scimgate_model::schema::Returned;
use scimgate_model::{ResourceType, ScimError, ScimType, filter, path};
use scimgate_store::{ListPage, ListQuery, Page, Position, SortBy, StoreError, StoredDocument};
use serde_json::{Map, Value, json};

use crate::blocking::{blocking, storage};
use crate::body::read_json;
use crate::context::Principal;
use crate::cursor::CursorKey;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::render::{
    document_size, document_text, json_string, json_text, scim_base, scim_json_text, write_document,
};
use crate::state::AppState;

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// One list request, from query parameters or a SearchRequest body.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    /// RFC 9865: present (even empty) selects cursor paging.
    pub cursor: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl Search {
    pub fn from_query(q: &QueryParams) -> Result<Search, ScimError> {
        Ok(Search {
            filter: q.get("filter").map(str::to_owned),
            sort_by: q.get("sortBy").filter(|s| !s.is_empty()).map(str::to_owned),
            descending: sort_order(q.get("sortOrder"))?,
            start_index: q.integer("startIndex")?,
            count: q.integer("count")?,
            cursor: q.get("cursor").map(str::to_owned),
            attributes: q.get("attributes").map(str::to_owned),
            excluded_attributes: q.get("excludedAttributes").map(str::to_owned),
        })
    }

    /// Reads a SearchRequest (RFC 7644 §3.4.3). Unknown members are refused by name.
    pub fn from_body(body: &Value) -> Result<Search, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let mut search = Search::default();
        let mut schema_ok = false;
        for (key, value) in obj {
            let text = |v: &Value| -> Result<Option<String>, ScimError> {
                match v {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s.clone())),
                    _ => Err(ScimError::invalid_value(format!(
                        "SearchRequest '{key}' must be a string"
                    ))),
                }
            };
            let list = |v: &Value| -> Result<Option<String>, ScimError> {
                match v {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s.clone())),
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .map(|v| Some(v.join(",")))
                        .ok_or_else(|| {
                            ScimError::invalid_value(format!(
                                "SearchRequest '{key}' must be a list of strings"
                            ))
                        }),
                    _ => Err(ScimError::invalid_value(format!(
                        "SearchRequest '{key}' must be a list of strings"
                    ))),
                }
            };
            let int = |v: &Value| -> Result<Option<i64>, ScimError> {
                match v {
                    Value::Null => Ok(None),
                    v => v.as_i64().map(Some).ok_or_else(|| {
                        ScimError::invalid_value(format!(
                            "SearchRequest '{key}' must be an integer"
                        ))
                    }),
                }
            };
            match key.to_ascii_lowercase().as_str() {
                "schemas" => {
                    schema_ok = value.as_array().is_some_and(|s| {
                        s.iter().any(|u| {
                            u.as_str()
                                .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_REQUEST))
                        })
                    });
                }
                "filter" => search.filter = text(value)?,
                "sortby" => search.sort_by = text(value)?.filter(|s| !s.is_empty()),
                "sortorder" => search.descending = sort_order(text(value)?.as_deref())?,
                "startindex" => search.start_index = int(value)?,
                "count" => search.count = int(value)?,
                "cursor" => search.cursor = text(value)?.or(Some(String::new())),
                "attributes" => search.attributes = list(value)?,
                "excludedattributes" => search.excluded_attributes = list(value)?,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "unknown SearchRequest attribute '{key}'"
                    )));
                }
            }
        }
        if !schema_ok {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must be [\"{SEARCH_REQUEST}\"]"
            )));
        }
        Ok(search)
    }

    fn projection(&self, rt: ResourceType) -> Result<Projection, ScimError> {
        Projection::parse(
            rt,
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )
    }
}

fn sort_order(v: Option<&str>) -> Result<bool, ScimError> {
    match v {
        None | Some("") => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("ascending") => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("descending") => Ok(true),
        Some(s) => Err(ScimError::invalid_value(format!(
            "sortOrder must be 'ascending' or 'descending', got '{s}'"
        ))),
    }
}

/// Whether a list reads the related side. A group's members only when `attributes` names
/// them (as Entra expects: a list of groups is for finding groups, and a member list can
/// be a hundred thousand long); a user's groups whenever they will be shown. Either way
/// the store caps how many related values one page carries.
fn with_relations(rt: ResourceType, projection: &Projection) -> bool {
    match rt {
        ResourceType::Group => projection.names("members"),
        ResourceType::User => projection.wants("groups"),
    }
}

/// A filter or `sortBy` naming an extension of `rt` the tenant may not use is answered
/// as one naming a schema no one declared: in the same words, at the same position, the
/// path as the client wrote it.
fn refuse_hidden_extensions(rt: ResourceType, tenant: &str, s: &Search) -> Result<(), ScimError> {
    let registry = scimgate_model::registry::current();
    let hidden: Vec<String> = registry
        .hidden_from(rt, tenant)
        .iter()
        .map(|urn| urn.to_ascii_lowercase())
        .collect();
    if hidden.is_empty() {
        return Ok(());
    }
    if let Some(text) = s.filter.as_deref() {
        let lower = text.to_ascii_lowercase();
        let found = hidden
            .iter()
            .flat_map(|urn| {
                lower
                    .match_indices(urn.as_str())
                    .map(|(pos, _)| (pos, urn.len()))
            })
            .filter(|&(pos, len)| {
                let before = lower[..pos].chars().next_back();
                let after = lower[pos + len..].chars().next();
                before.is_none_or(|c| c.is_whitespace() || "([".contains(c))
                    && after.is_none_or(|c| !(c.is_ascii_alphanumeric() || "-._".contains(c)))
            })
            .map(|(pos, _)| pos)
            .min();
        if let Some(pos) = found {
            let written: String = text[pos..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"[]()".contains(*c))
                .collect();
            return Err(ScimError::bad_request(
                ScimType::InvalidFilter,
                format!(
                    "unknown schema in '{written}' for resource type {} (at position {})",
                    rt.name(),
                    pos + 1
                ),
            ));
        }
    }
    if let Some(sort) = s.sort_by.as_deref()
        && registry.hides(rt, tenant, sort)
    {
        return Err(ScimError::invalid_value(format!(
            "sortBy: unknown schema in '{}' for resource type {}",
            sort.trim(),
            rt.name()
        )));
    }
    Ok(())
}

/// What the filter parser says of a schema no one declared, for a path into an extension
/// hidden from the tenant: the path as written and its position (counted from 1, as the
/// parser does).
fn unknown_schema_in_filter(rt: ResourceType, p: &path::AttrPath, filter: &str) -> String {
    let urn = p.extension.map_or("", |e| e.id).to_ascii_lowercase();
    let Some(pos) = filter.to_ascii_lowercase().find(&urn) else {
        return unknown_schema(rt, p);
    };
    let written: String = filter[pos..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !"[]()".contains(*c))
        .collect();
    format!(
        "unknown schema in '{written}' for resource type {} (at position {})",
        rt.name(),
        pos + 1
    )
}

/// What path resolution says of a schema no one declared (`path::resolve`), for a path
/// into an extension hidden from the tenant.
fn unknown_schema(rt: ResourceType, p: &path::AttrPath) -> String {
    format!(
        "unknown schema in '{}' for resource type {}",
        p.canonical(),
        rt.name()
    )
}

/// A list request for one resource type, ready for storage.
struct Prepared {
    query: ListQuery,
    projection: Projection,
    binding: String,
    start_index: u64,
}

fn prepare(
    state: &AppState,
    tenant: &str,
    rt: ResourceType,
    s: &Search,
) -> Result<Prepared, ScimError> {
    // Before anything is parsed, so that no other refusal (a never-returned attribute, a
    // bad comparison) tells the tenant that a hidden extension exists.
    refuse_hidden_extensions(rt, tenant, s)?;
    let filter = s
        .filter
        .as_deref()
        .map(|f| {
            let mut rewrites = Vec::new();
            let parsed = filter::parse_noting(
                rt,
                f,
                &state
                    .settings
                    .dialect_for(tenant)
                    .filter_options(state.settings.filter_max_depth),
                &mut rewrites,
            );
            for rule in rewrites {
                tracing::debug!(rule, "dialect rewrite");
            }
            parsed
        })
        .transpose()?;
    // An extension the tenant may not use is unknown to it, as in `/Schemas`: named in a
    // filter or `sortBy`, it is answered as a schema no one declared.
    let registry = scimgate_model::registry::current();
    let hidden = |p: &path::AttrPath| {
        p.extension
            .is_some_and(|e| !registry.available(e.id, tenant))
    };
    if let (Some(p), Some(text)) = (
        filter.as_ref().and_then(|f| f.find_path(&hidden)),
        s.filter.as_deref(),
    ) {
        return Err(ScimError::bad_request(
            ScimType::InvalidFilter,
            unknown_schema_in_filter(rt, &p, text),
        ));
    }
    let sort = s
        .sort_by
        .as_deref()
        .map(|p| {
            let path = path::resolve_attribute(rt, p)
                .map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?;
            if hidden(&path) {
                return Err(ScimError::invalid_value(format!(
                    "sortBy: {}",
                    unknown_schema(rt, &path)
                )));
            }
            // Never returned, so never an order to see (and an order would tell the value).
            if path.attr.returned == Returned::Never || path.leaf().returned == Returned::Never {
                return Err(ScimError::invalid_value(format!(
                    "sortBy '{}' is not sortable: it is never returned",
                    path.canonical()
                )));
            }
            Ok(SortBy {
                path,
                descending: s.descending,
            })
        })
        .transpose()?;
    let max = state.settings.max_results;
    // RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0.
    let count = s.count.map_or(max, |c| (c.max(0) as u64).min(max));
    let start_index = s.start_index.unwrap_or(1).max(1) as u64;
    let binding = cursor_binding(tenant, rt, s);
    let page = match &s.cursor {
        None => Page::Index { start_index, count },
        Some(c) if c.is_empty() => Page::Cursor { after: None, count },
        Some(c) => Page::Cursor {
            after: Some(decode_cursor(&state.cursors, c, &binding)?),
            count,
        },
    };
    let projection = s.projection(rt)?;
    let query = ListQuery {
        filter,
        sort,
        page,
        with_relations: with_relations(rt, &projection),
    };
    Ok(Prepared {
        query,
        projection,
        binding,
        start_index,
    })
}

/// What a cursor is bound to: the tenant, the type, the filter and the order. A cursor
/// sealed for one of them does not open for another.
fn cursor_binding(tenant: &str, rt: ResourceType, s: &Search) -> String {
    json!(["list", tenant, rt.name(), s.filter, s.sort_by, s.descending]).to_string()
}

fn encode_cursor(key: &CursorKey, p: &Position, binding: &str) -> String {
    key.seal(binding, &json!({"k": p.key, "i": p.id}))
}

fn decode_cursor(key: &CursorKey, c: &str, binding: &str) -> Result<Position, ScimError> {
    let invalid = || {
        ScimError::bad_request(
            ScimType::InvalidCursor,
            format!(
                "cursor '{}' is not one this server issued for this tenant, resource type, filter, sortBy and sortOrder",
                scimgate_model::excerpt(c, 64)
            ),
        )
    };
    let v = key.open(binding, c).ok_or_else(invalid)?;
    let id = v.get("i").and_then(Value::as_str).ok_or_else(invalid)?;
    Ok(Position {
        key: v.get("k").cloned().unwrap_or(Value::Null),
        id: id.to_owned(),
    })
}

/// The longest filter parsed on an async worker to see whether storage can answer at once:
/// an equality on a userName of the longest length IdPs send, with room to spare.
const AT_ONCE_FILTER_BYTES: usize = 512;

/// Runs one list for one type and renders the ListResponse, both on a blocking thread: a
/// page of large resources is megabytes of JSON, which must not stall an async worker.
/// A list that matches at most one resource is answered on the async worker instead, within
/// its tenant's part of what the workers answer themselves (`at_once`).
async fn list_one(
    state: web::Data<AppState>,
    tenant: String,
    rt: ResourceType,
    search: Search,
    base: String,
) -> Result<String, ApiError> {
    // A short filter is parsed here: if it can match at most one resource (`userName eq`,
    // asked before every create a provisioning client sends), storage may answer at once,
    // as it answers a read by id, without the hand-off to a blocking thread and back.
    let mut prepared = None;
    if search.cursor.is_none()
        && search
            .filter
            .as_deref()
            .is_some_and(|f| f.len() <= AT_ONCE_FILTER_BYTES)
        && state.at_once.allows(&tenant)
    {
        let ready = prepare(&state, &tenant, rt, &search)?;
        if let Some(page) = state.store.list_at_once(&tenant, rt, &ready.query) {
            return Ok(list_response(page?, &ready, &base, None)?);
        }
        prepared = Some(ready);
    }
    let store = state.store.clone();
    storage(state.store.answer_deadline(), move || {
        let prepared = match prepared {
            Some(ready) => ready,
            None => prepare(&state, &tenant, rt, &search)?,
        };
        let page = store.list_documents(&tenant, rt, &prepared.query)?;
        Ok(list_response(
            page,
            &prepared,
            &base,
            search.cursor.is_some().then_some(&*state.cursors),
        )?)
    })
    .await
}

/// Each resource rendered to its JSON text and dropped at once: a page's peak memory is
/// its stored text and its answer's, not a tree of every resource together.
fn render_all(
    resources: Vec<StoredDocument>,
    projection: &Projection,
    base: &str,
) -> Result<Vec<String>, StoreError> {
    resources
        .into_iter()
        .map(|r| document_text(r, base, projection))
        .collect()
}

/// A ListResponse's text: the envelope's members, then `Resources` from rendered texts.
fn list_text(envelope: Map<String, Value>, resources: &[String]) -> String {
    let size: usize = resources.iter().map(|r| r.len() + 1).sum();
    let mut text = envelope_text(envelope, size);
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        text.extend_from_slice(r.as_bytes());
    }
    finish_list(text)
}

/// A ListResponse's text with its resources written straight from their stored text,
/// each dropped once written.
fn list_text_of(
    envelope: Map<String, Value>,
    resources: Vec<StoredDocument>,
    projection: &Projection,
    base: &str,
) -> Result<String, StoreError> {
    let size: usize = resources.iter().map(|r| document_size(r) + 1).sum();
    let mut text = envelope_text(envelope, size);
    for (i, r) in resources.into_iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        write_document(r, base, projection, &mut text)?;
    }
    Ok(finish_list(text))
}

/// The envelope's members and the opening of `Resources`, in a buffer with room for
/// `resources` bytes more.
fn envelope_text(envelope: Map<String, Value>, resources: usize) -> Vec<u8> {
    let mut text = json_text(&Value::Object(envelope), resources + 256).into_bytes();
    text.pop(); // the envelope's closing brace; it always has `schemas` before it
    text.extend_from_slice(b",\"Resources\":[");
    text
}

fn finish_list(mut text: Vec<u8>) -> String {
    text.extend_from_slice(b"]}");
    json_string(text)
}

/// `cursors` is given in cursor mode (RFC 9865), to seal the next page's position.
fn list_response(
    page: ListPage<StoredDocument>,
    prepared: &Prepared,
    base: &str,
    cursors: Option<&CursorKey>,
) -> Result<String, StoreError> {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([LIST_RESPONSE]));
    if let Some(total) = page.total_results {
        out.insert("totalResults".into(), json!(total));
    }
    out.insert("itemsPerPage".into(), json!(page.resources.len()));
    if let Some(cursors) = cursors {
        if let Some(next) = &page.next {
            out.insert(
                "nextCursor".into(),
                json!(encode_cursor(cursors, next, &prepared.binding)),
            );
        }
    } else {
        out.insert("startIndex".into(), json!(prepared.start_index));
    }
    list_text_of(out, page.resources, &prepared.projection, base)
}

/// `GET /Users`, `GET /Groups`.
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    req: HttpRequest,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let search = Search::from_query(&query)?;
    let base = scim_base(&req, &state.settings);
    let body = list_one(state, principal.tenant, **rt, search, base).await?;
    Ok(scim_json_text(StatusCode::OK, body))
}

/// `POST /Users/.search`, `POST /Groups/.search`.
pub async fn search(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, &state).await?;
    // A SearchRequest can list tens of thousands of names: read off the async worker.
    let search = blocking(move || Ok(Search::from_body(&body)?)).await?;
    let base = scim_base(&req, &state.settings);
    let out = list_one(state, principal.tenant, **rt, search, base).await?;
    Ok(scim_json_text(StatusCode::OK, out))
}

/// `POST /.search`: every resource type at once, Users first, then Groups, each in the
/// requested order; index paging runs over the whole sequence.
pub async fn search_all(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, &state).await?;
    // A SearchRequest can list tens of thousands of names: read off the async worker.
    let search = blocking(move || Ok(Search::from_body(&body)?)).await?;
    if search.cursor.is_some() {
        return Err(ScimError::bad_request(
            ScimType::InvalidCursor,
            "cursor paging is per resource type; use /Users/.search or /Groups/.search",
        )
        .into());
    }
    let base = scim_base(&req, &state.settings);
    let tenant = principal.tenant;
    let deadline = state.store.answer_deadline();
    let body = storage(deadline, move || {
        search_all_types(&state, &tenant, &search, &base)
    })
    .await?;
    Ok(scim_json_text(StatusCode::OK, body))
}

/// The whole of `POST /.search`, on a blocking thread: prepare, read and render.
fn search_all_types(
    state: &AppState,
    tenant: &str,
    search: &Search,
    base: &str,
) -> Result<String, ApiError> {
    // A filter or sortBy that names an attribute one type lacks leaves that type out; if
    // no type accepts it, the first type's error explains why.
    let mut prepared = Vec::new();
    let mut first_error = None;
    for rt in ResourceType::ALL {
        match prepare(state, tenant, rt, search) {
            Ok(p) => prepared.push((rt, p)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if prepared.is_empty() {
        return Err(first_error.map_or_else(
            || ApiError::Internal("no resource types".into()),
            ApiError::from,
        ));
    }
    let (start_index, count) = match prepared[0].1.query.page {
        Page::Index { start_index, count } => (start_index, count),
        Page::Cursor { count, .. } => (1, count),
    };
    // Skip `start_index - 1` resources across the types in order, then take `count`.
    let mut skip = start_index - 1;
    let mut want = count;
    let mut total = 0;
    let mut resources = Vec::new();
    for (rt, p) in &prepared {
        let mut q = p.query.clone();
        q.page = Page::Index {
            start_index: skip + 1,
            count: want,
        };
        let page = state.store.list_documents(tenant, *rt, &q)?;
        let type_total = page.total_results.unwrap_or(0);
        total += type_total;
        skip = skip.saturating_sub(type_total);
        want -= page.resources.len() as u64;
        resources.extend(render_all(page.resources, &p.projection, base)?);
    }
    let mut envelope = Map::new();
    envelope.insert("schemas".into(), json!([LIST_RESPONSE]));
    envelope.insert("totalResults".into(), json!(total));
    envelope.insert("itemsPerPage".into(), json!(resources.len()));
    envelope.insert("startIndex".into(), json!(start_index));
    Ok(list_text(envelope, &resources))
}
