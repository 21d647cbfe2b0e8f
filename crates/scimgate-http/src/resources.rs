//! `/Users` and `/Groups`: create, read, replace and delete (RFC 7644 §3.3–§3.6).

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use scimgate_model::ResourceType;
use scimgate_store::{StoreError, StoredDocument, StoredResource};

use crate::blocking::storage;
use crate::body::read_json;
use crate::context::{Principal, RequestId};
use crate::error::{ApiError, method_not_allowed};
use crate::etag::{Precondition, etag};
use crate::hooks::Hook;
use crate::list::{list, search};
use crate::query::QueryParams;
use crate::render::{
    document_text, projection, resource_response, resource_response_text, scim_base,
};
use crate::report::WriteReport;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    for rt in ResourceType::ALL {
        cfg.service(
            web::scope(&format!("/{}", rt.endpoint()))
                .app_data(web::Data::new(rt))
                .service(
                    web::resource("")
                        .route(web::get().to(list))
                        .route(web::post().to(create))
                        .default_service(web::to(method_not_allowed("GET, HEAD, POST"))),
                )
                .service(
                    web::resource("/.search")
                        .route(web::post().to(search))
                        .default_service(web::to(method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/{id}")
                        .route(web::get().to(get))
                        .route(web::put().to(replace))
                        .route(web::patch().to(patch))
                        .route(web::delete().to(delete))
                        .default_service(web::to(method_not_allowed(
                            "GET, HEAD, PUT, PATCH, DELETE",
                        ))),
                ),
        );
    }
}

/// Runs a write on a blocking thread, then leaves its report on the request whatever the
/// outcome (the audit trail is written from it) and hands back what it stored.
async fn reported<F>(
    req: &HttpRequest,
    deadline: Option<Duration>,
    mut report: WriteReport,
    write: F,
) -> Result<Option<StoredResource>, ApiError>
where
    F: FnOnce(&mut WriteReport) -> Result<(), ApiError> + Send + 'static,
{
    let (mut report, result) = storage(deadline, move || {
        let result = write(&mut report);
        Ok((report, result))
    })
    .await?;
    let stored = report.stored.take();
    req.extensions_mut().insert(report);
    result.map(|()| stored)
}

/// The report of the write `req` asks for, before it starts.
fn report_for(
    req: &HttpRequest,
    state: &AppState,
    principal: Principal,
    operation: Hook,
    rt: ResourceType,
    id: Option<&str>,
) -> WriteReport {
    let client = state.settings.network.client_addr(req);
    WriteReport::new(RequestId::of(req), principal, client, operation, rt, id)
}

/// What a successful create, replace or patch stored: always there when the write says so.
fn stored(resource: Option<StoredResource>) -> Result<StoredResource, ApiError> {
    resource.ok_or_else(|| ApiError::Internal("the write reported no stored resource".into()))
}

async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    id: web::Path<String>,
    req: HttpRequest,
    query: QueryParams,
) -> Result<HttpResponse, ApiError> {
    let rt = **rt;
    let projection = projection(rt, &query)?;
    let relation = if rt == ResourceType::Group {
        "members"
    } else {
        "groups"
    };
    let with_relations = projection.wants(relation);
    let (store, id) = (state.store.clone(), id.into_inner());
    let tenant = principal.tenant;
    let not_modified = Precondition::if_none_match(&req);
    let base = scim_base(&req, &state.settings);
    let render = move |found: Option<StoredDocument>, base: &str, id: &str| {
        let found = found.ok_or_else(|| ApiError::from(StoreError::NotFound(rt, id.to_owned())))?;
        let version = found.version;
        if not_modified.is_some_and(|p| p.matches(version)) {
            return Ok((version, None));
        }
        Ok::<_, ApiError>((version, Some(document_text(found, base, &projection)?)))
    };
    // Most reads are a lookup by key and a few relations: answered here, without the
    // hand-off to a blocking thread. A group with many members (megabytes to read and
    // render), a pool with no connection free at once, or a read past its tenant's part of
    // what the workers answer themselves (`at_once`), goes to a blocking thread.
    let at_once = state
        .at_once
        .allows(&tenant)
        .then(|| store.get_at_once(&tenant, rt, &id, with_relations))
        .flatten();
    let (version, body) = match at_once {
        Some(found) => render(found?, &base, &id)?,
        None => {
            let render_base = base.clone();
            storage(state.store.answer_deadline(), move || {
                render(
                    store.get_document(&tenant, rt, &id, with_relations)?,
                    &render_base,
                    &id,
                )
            })
            .await?
        }
    };
    let Some(body) = body else {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag(version)))
            .finish());
    };
    Ok(resource_response_text(StatusCode::OK, version, None, body))
}

async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    req: HttpRequest,
    query: QueryParams,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rt = **rt;
    let projection = projection(rt, &query)?;
    let doc = read_json(&req, payload, &state).await?;
    let st = state.clone();
    let report = report_for(&req, &state, principal, Hook::Create, rt, None);
    let created = stored(
        reported(&req, state.store.answer_deadline(), report, move |report| {
            st.writes.create(report, doc)
        })
        .await?,
    )?;
    let base = scim_base(&req, &state.settings);
    Ok(resource_response(
        StatusCode::CREATED,
        created,
        &base,
        &projection,
    ))
}

async fn replace(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    id: web::Path<String>,
    req: HttpRequest,
    query: QueryParams,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rt = **rt;
    let projection = projection(rt, &query)?;
    let doc = read_json(&req, payload, &state).await?;
    let if_match = Precondition::if_match(&req);
    let st = state.clone();
    let report = report_for(
        &req,
        &state,
        principal,
        Hook::Replace,
        rt,
        Some(id.as_str()),
    );
    let replaced = reported(&req, state.store.answer_deadline(), report, move |report| {
        st.writes.replace(report, if_match.as_ref(), doc)
    })
    .await?;
    let replaced = stored(replaced)?;
    let base = scim_base(&req, &state.settings);
    Ok(resource_response(
        StatusCode::OK,
        replaced,
        &base,
        &projection,
    ))
}

async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let rt = **rt;
    let if_match = Precondition::if_match(&req);
    let st = state.clone();
    let report = report_for(&req, &state, principal, Hook::Delete, rt, Some(id.as_str()));
    reported(&req, state.store.answer_deadline(), report, move |report| {
        st.writes.delete(report, if_match.as_ref())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn patch(
    state: web::Data<AppState>,
    principal: Principal,
    rt: web::Data<ResourceType>,
    id: web::Path<String>,
    req: HttpRequest,
    query: QueryParams,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rt = **rt;
    let projection = projection(rt, &query)?;
    let body = read_json(&req, payload, &state).await?;
    let if_match = Precondition::if_match(&req);
    // A group answers 204 unless asked for its representation, so that changing one member
    // of a large group never serialises all the others (RFC 7644 §3.5.2 allows 204).
    let asked = query.get("attributes").is_some() || query.get("excludedAttributes").is_some();
    let with_body =
        rt == ResourceType::User || asked || state.settings.group_patch_returns_resource;
    let st = state.clone();
    let mut report = report_for(&req, &state, principal, Hook::Patch, rt, Some(id.as_str()));
    if !with_body {
        report.answered = 204;
    }
    let members_shown = with_body && rt == ResourceType::Group && projection.wants("members");
    let resource = reported(&req, state.store.answer_deadline(), report, move |report| {
        st.writes.patch(report, if_match.as_ref(), body)?;
        if members_shown {
            // The answer shows the members: the group is read again with them.
            let id = report.id.clone().unwrap_or_default();
            let group = st.store.get(report.tenant(), rt, &id, true)?;
            report.stored = Some(group.ok_or(StoreError::NotFound(rt, id))?);
        }
        Ok(())
    })
    .await?;
    let resource = stored(resource)?;
    if !with_body {
        return Ok(HttpResponse::NoContent()
            .insert_header((header::ETAG, etag(resource.version)))
            .finish());
    }
    let base = scim_base(&req, &state.settings);
    Ok(resource_response(
        StatusCode::OK,
        resource,
        &base,
        &projection,
    ))
}
