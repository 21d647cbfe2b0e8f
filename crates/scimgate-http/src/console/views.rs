//! The admin page's read views, each a JSON answer for the signed-in operator, in the
//! tenants their token named: provisioning activity (the audit trail, filtered, newest
//! first, with one row's changes), users and groups (a SCIM filter, cursor pages, one
//! resource with its history), receivers, plugins and schemas, tokens and clients, and the
//! server's health. Lists page with sealed cursors on indexed orders, so that a page costs
//! the same at a million rows as at ten.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use scimgate_model::{ResourceType, ScimError};
use scimgate_store::{AuditQuery, AuditRecord, ListQuery, Page, Position, Store};
use serde_json::{Value, json};

use super::operator::{audit_view, operator_in, signed_in, with_admin};
use crate::error::ApiError;
use crate::state::AppState;

/// Rows in one page of a list.
const PAGE: u32 = 50;

fn store_call<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, scimgate_store::StoreError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    let store = Arc::clone(&state.store);
    crate::blocking::storage(store.answer_deadline(), move || Ok(f(store.as_ref())?))
}

pub async fn me(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let op = signed_in(&req, &state)?;
    Ok(HttpResponse::Ok().json(json!({
        "subject": op.subject,
        "tenants": op.tenants,
        "csrf": op.csrf,
    })))
}

fn bad(detail: String) -> ApiError {
    ApiError::Scim(ScimError::invalid_value(detail))
}

/// A time the page sends (`2026-11-29T10:00` from a date-time field, or RFC 3339).
fn time_param(name: &str, text: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let full = if text.len() == 16 {
        format!("{text}:00Z")
    } else {
        text.to_owned()
    };
    scimgate_model::clock::normalize_timestamp(&full)
        .map(Some)
        .ok_or_else(|| {
            bad(format!(
                "'{name}' must be a time, not '{}'",
                scimgate_model::excerpt(text, 64)
            ))
        })
}

fn statuses(text: Option<&str>) -> Result<Option<(u16, u16)>, ApiError> {
    Ok(match text.unwrap_or("") {
        "" | "all" => None,
        "ok" => Some((200, 299)),
        "refused" => Some((400, 499)),
        "failed" => Some((500, 599)),
        exact => {
            let n: u16 = exact.parse().map_err(|_| {
                bad(format!(
                    "'status' must be ok, refused, failed or a status, not '{}'",
                    scimgate_model::excerpt(exact, 16)
                ))
            })?;
            Some((n, n))
        }
    })
}

/// How a row of the trail goes to the page: its `seq` sealed (the sequence is global
/// across tenants and stays inside the server).
fn row_json(state: &AppState, tenant: &str, r: &AuditRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("seq");
        o.insert(
            "ref".into(),
            Value::String(state.cursors.seal(&row_binding(tenant), &r.seq.into())),
        );
        if let Some(plugins) = r.plugins.as_deref() {
            o.insert(
                "plugins".into(),
                serde_json::from_str(plugins).unwrap_or(Value::Null),
            );
        }
    }
    v
}

fn row_binding(tenant: &str) -> String {
    json!(["admin-row", tenant]).to_string()
}

pub async fn activity(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, tenant, q) = operator_in(&req, &state)?;
    let last = |name: &str| q.all(name).last().filter(|v| !v.is_empty());
    let mut query = AuditQuery {
        tenant: Some(tenant.clone()),
        since: time_param("since", last("since"))?,
        until: time_param("until", last("until"))?,
        statuses: statuses(last("status"))?,
        subject: last("subject").map(str::to_owned),
        resource_id: last("resource").map(str::to_owned),
        limit: PAGE,
        newest: true,
        ..Default::default()
    };
    // The cursor holds for these filters only.
    let filters = ["since", "until", "status", "subject", "resource"].map(last);
    let binding = json!(["admin-activity", tenant, filters]).to_string();
    if let Some(cursor) = last("cursor") {
        query.before_seq = Some(
            state
                .cursors
                .open(&binding, cursor)
                .and_then(|v| v.as_i64())
                .ok_or_else(|| {
                    bad("the page's cursor is not one this server gave for these filters".into())
                })?,
        );
    }
    let mut rows = store_call(&state, move |s| s.audit(&query)).await?;
    // Newest first on the page.
    rows.reverse();
    let next = (rows.len() as u32 == PAGE)
        .then(|| {
            rows.last()
                .map(|r| state.cursors.seal(&binding, &r.seq.into()))
        })
        .flatten();
    let entries: Vec<Value> = rows.iter().map(|r| row_json(&state, &tenant, r)).collect();
    Ok(HttpResponse::Ok().json(json!({"tenant": tenant, "entries": entries, "next": next})))
}

/// One row of the trail with the changes the write made: the change feed's event the row
/// names, and the one of the version before it (kept for the feed's retention).
pub async fn activity_row(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (operator, tenant, _) = operator_in(&req, &state)?;
    let seq = state
        .cursors
        .open(&row_binding(&tenant), &path)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| ApiError::NotFound("no such row in this tenant's trail".into()))?;
    let t = tenant.clone();
    let (row, change, before) = store_call(&state, move |s| {
        let row = s
            .audit(&AuditQuery {
                tenant: Some(t.clone()),
                after_seq: Some(seq - 1),
                limit: 1,
                ..Default::default()
            })?
            .into_iter()
            .find(|r| r.seq == seq);
        let Some(row) = row else {
            return Ok((None, None, None));
        };
        // The write's own event, by its key; the version before, by the resource's
        // earlier row in the trail.
        let event = |n: Option<i64>| -> Result<_, scimgate_store::StoreError> {
            Ok(match n {
                Some(n) => s.events(&t, n - 1, 1)?.into_iter().find(|e| e.seq == n),
                None => None,
            })
        };
        let change = event(row.event_seq)?;
        let before = match (&row.resource_id, row.version_before) {
            (Some(id), Some(v)) => {
                let earlier = s.audit(&AuditQuery {
                    tenant: Some(t.clone()),
                    resource_id: Some(id.clone()),
                    before_seq: Some(seq),
                    limit: 50,
                    newest: true,
                    ..Default::default()
                })?;
                let at = earlier.iter().rev().find(|r| r.version_after == Some(v));
                event(at.and_then(|r| r.event_seq))?
            }
            _ => None,
        };
        Ok((Some(row), change, before))
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::NotFound("no such row in this tenant's trail".into()))?;
    audit_view(
        &state,
        &operator,
        &tenant,
        "activity",
        row.resource_id.clone(),
    );
    Ok(HttpResponse::Ok().json(json!({
        "row": row_json(&state, &tenant, &row),
        "change": change.as_ref().map(event_json),
        "before": before.as_ref().map(event_json),
    })))
}

fn event_json(e: &scimgate_store::EventRecord) -> Value {
    json!({
        "seq": e.seq,
        "at": e.at,
        "operation": e.kind.name(),
        "version": e.version,
        "attributes": e.attributes,
        "data": e.data,
        "members": e.members,
    })
}

fn kind(text: &str) -> Result<ResourceType, ApiError> {
    match text {
        "Users" => Ok(ResourceType::User),
        "Groups" => Ok(ResourceType::Group),
        _ => Err(ApiError::NotFound(format!(
            "no resource type '{}'",
            scimgate_model::excerpt(text, 32)
        ))),
    }
}

pub async fn resources(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, tenant, q) = operator_in(&req, &state)?;
    let rt = kind(&path)?;
    let last = |name: &str| q.all(name).last().filter(|v| !v.is_empty());
    let filter_text = last("filter").unwrap_or("").to_owned();
    let filter = match filter_text.as_str() {
        "" => None,
        text => Some(scimgate_model::filter::parse(rt, text)?),
    };
    let binding = json!(["admin-resources", tenant, path.as_str(), filter_text]).to_string();
    let after = match last("cursor") {
        None => None,
        Some(cursor) => {
            let v = state.cursors.open(&binding, cursor).ok_or_else(|| {
                bad("the page's cursor is not one this server gave for this filter".into())
            })?;
            Some(Position {
                key: v[0].clone(),
                id: v[1].as_str().unwrap_or_default().to_owned(),
            })
        }
    };
    let query = ListQuery {
        filter,
        sort: None,
        page: Page::Cursor {
            after,
            count: u64::from(PAGE),
        },
        with_relations: false,
    };
    let t = tenant.clone();
    let page = store_call(&state, move |s| s.list(&t, rt, &query)).await?;
    let rows: Vec<Value> = page
        .resources
        .iter()
        .map(|r| {
            let a = &r.attributes;
            json!({
                "id": r.id,
                "name": a.get(if rt == ResourceType::User { "userName" } else { "displayName" }),
                "displayName": a.get("displayName"),
                "externalId": a.get("externalId"),
                "active": a.get("active"),
                "lastModified": r.last_modified,
                "version": r.version,
            })
        })
        .collect();
    let next = page
        .next
        .map(|p| state.cursors.seal(&binding, &json!([p.key, p.id])));
    Ok(HttpResponse::Ok().json(json!({
        "tenant": tenant,
        "total": page.total_results,
        "rows": rows,
        "next": next,
    })))
}

pub async fn resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (operator, tenant, _) = operator_in(&req, &state)?;
    let (kind_text, id) = path.into_inner();
    let rt = kind(&kind_text)?;
    let base = crate::render::scim_base(&req, &state.settings);
    let (t, i) = (tenant.clone(), id.clone());
    let (found, history) = store_call(&state, move |s| {
        let found = s.get(&t, rt, &i, true)?;
        let history = s.audit(&AuditQuery {
            tenant: Some(t.clone()),
            resource_id: Some(i.clone()),
            limit: PAGE,
            newest: true,
            ..Default::default()
        })?;
        Ok((found, history))
    })
    .await?;
    let found = found.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no {} '{}' in tenant '{tenant}'",
            rt.name(),
            scimgate_model::excerpt(&id, 64)
        ))
    })?;
    audit_view(&state, &operator, &tenant, rt.name(), Some(id));
    let mut history: Vec<Value> = history
        .iter()
        .map(|r| row_json(&state, &tenant, r))
        .collect();
    history.reverse();
    Ok(HttpResponse::Ok().json(json!({
        "resource": crate::render::resource_json(&found, &base),
        "history": history,
    })))
}

pub async fn receivers(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let operator = signed_in(&req, &state)?;
    let (positions, heads) =
        with_admin(&state, |a| Ok((a.event_positions()?, a.event_heads()?))).await?;
    let rows: Vec<Value> = positions
        .iter()
        .filter(|p| operator.tenants.contains(&p.tenant))
        .map(|p| {
            let head = heads
                .iter()
                .find(|(t, _)| *t == p.tenant)
                .map_or(0, |(_, h)| *h);
            let stats = state
                .receivers
                .iter()
                .find(|r| scimgate_events::consumer_name(&r.name) == p.consumer);
            json!({
                "consumer": p.consumer,
                "receiver": stats.map(|s| s.name.clone()),
                "tenant": p.tenant,
                "delivered": p.seq,
                "head": head,
                "lag": (head - p.seq).max(0),
                "state": p.state,
                "updated": p.updated,
                "failingSince": p.failing_since,
                "lastError": p.last_error,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"receivers": rows})))
}

pub async fn plugins(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let operator = signed_in(&req, &state)?;
    let figures = state.metrics.plugin_figures();
    // Only what runs for the session's tenants, naming only those tenants.
    let theirs = |tenants: &Option<Vec<String>>| -> (bool, Option<Vec<String>>) {
        match tenants {
            None => (true, None),
            Some(ts) => {
                let mine: Vec<String> = ts
                    .iter()
                    .filter(|t| operator.tenants.contains(t))
                    .cloned()
                    .collect();
                (!mine.is_empty(), Some(mine))
            }
        }
    };
    let plugins: Vec<Value> = state
        .console
        .plugins
        .get()
        .map(|p| {
            p.current()
                .specs()
                .filter(|spec| theirs(&spec.tenants).0)
                .map(|spec| {
                    json!({
                        "name": spec.name,
                        "file": spec.file.display().to_string(),
                        "hooks": spec.hooks.iter().map(|h| format!("{h:?}").to_lowercase()).collect::<Vec<_>>(),
                        "resourceTypes": spec.resource_types,
                        "tenants": theirs(&spec.tenants).1,
                        "figures": figures.get(&spec.name),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let registry = scimgate_model::registry::current();
    let mut schemas: Vec<Value> = [ResourceType::User, ResourceType::Group]
        .into_iter()
        .flat_map(|rt| {
            registry.extensions(rt).iter().map(move |s| {
                json!({"id": s.id, "name": s.name, "resourceType": rt.name(), "attributes": s.attributes.len()})
            })
        })
        .collect();
    for ext in registry.operator() {
        let (shown, tenants) = theirs(&ext.tenants);
        if shown {
            schemas.push(json!({
                "id": ext.schema.id, "name": ext.schema.name, "resourceType": ext.resource_type.name(),
                "attributes": ext.schema.attributes.len(), "required": ext.required,
                "tenants": tenants, "file": ext.file,
            }));
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "plugins": plugins,
        "schemas": schemas,
        "reloadable": state.console.reload.get().is_some(),
    })))
}

/// Tokens and clients the operator may see: those of their tenants (a token or client of
/// several tenants shows when one is theirs; acting on it needs them all).
pub async fn access(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let operator = signed_in(&req, &state)?;
    let (tokens, clients) = with_admin(&state, |a| Ok((a.tokens()?, a.clients()?))).await?;
    let mine = |tenants: &[String]| tenants.iter().any(|t| operator.tenants.contains(t));
    let all_mine = |tenants: &[String]| tenants.iter().all(|t| operator.tenants.contains(t));
    let tokens: Vec<Value> = tokens
        .iter()
        .filter(|t| mine(&t.tenants))
        .map(|t| {
            json!({
                "jti": t.jti, "subject": t.subject, "tenants": t.tenants, "scope": t.scope,
                "issuedAt": t.issued_at, "expiresAt": t.expires_at, "revokedAt": t.revoked_at,
                "actionable": all_mine(&t.tenants),
            })
        })
        .collect();
    let clients: Vec<Value> = clients
        .iter()
        .filter(|c| mine(&c.tenants))
        .map(|c| {
            json!({
                "name": c.name, "clientId": c.client_id, "tenants": c.tenants, "scope": c.scope,
                "tokenTtlSecs": c.token_ttl_secs, "created": c.created,
                "secrets": c.secrets.iter().map(|s| json!({"created": s.created, "expires": s.expires})).collect::<Vec<_>>(),
                "assertion": c.assertion.is_some(),
                "actionable": all_mine(&c.tenants),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"tokens": tokens, "clients": clients})))
}

pub async fn health(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    signed_in(&req, &state)?;
    let (stats, bytes, events) = store_call(&state, |s| {
        Ok((s.stats(), s.size_bytes()?, s.events_written()?))
    })
    .await?;
    let rates = state.console.rates(&stats);
    Ok(HttpResponse::Ok().json(json!({
        "databaseBytes": bytes,
        "writes": stats.writes,
        "commits": stats.commits,
        "eventsWritten": events,
        "writesPerSecond": rates.0,
        "commitsPerSecond": rates.1,
        "meanCommitMillis": if stats.commits > 0 { stats.commit_micros as f64 / stats.commits as f64 / 1000.0 } else { 0.0 },
        "readConnections": stats.read_connections,
        "idleReadConnections": stats.idle_read_connections,
        "readCheckouts": stats.read_checkouts,
        "meanReadWaitMillis": if stats.read_checkouts > 0 { stats.read_wait_micros as f64 / stats.read_checkouts as f64 / 1000.0 } else { 0.0 },
        "openConnections": state.connections.open(),
    })))
}
