//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4), generated from
//! the same schema definitions the validator uses, and truthful about what is supported.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scimgate_model::schema::Schema;
use scimgate_model::{ResourceType, registry, schemas};
use serde_json::{Value, json};

use crate::context::Principal;
use crate::error::{ApiError, method_not_allowed};
use crate::list::LIST_RESPONSE;
use crate::render::{scim_base, scim_json};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let get_only = || web::to(method_not_allowed("GET, HEAD"));
    cfg.service(
        web::resource("/ServiceProviderConfig")
            .route(web::get().to(service_provider_config))
            .default_service(get_only()),
    )
    .service(
        web::resource("/ResourceTypes")
            .route(web::get().to(resource_types))
            .default_service(get_only()),
    )
    .service(
        web::resource("/ResourceTypes/{name}")
            .route(web::get().to(resource_type))
            .default_service(get_only()),
    )
    .service(
        web::resource("/Schemas")
            .route(web::get().to(schema_list))
            .default_service(get_only()),
    )
    .service(
        web::resource("/Schemas/{id}")
            .route(web::get().to(schema))
            .default_service(get_only()),
    );
}

async fn service_provider_config(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = scim_base(&req, &state.settings);
    let mut config = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/scimgate/scimgate/blob/main/docs/api.md",
            "patch": {"supported": true},
            "bulk": {
                "supported": state.settings.bulk.max_operations > 0,
                "maxOperations": state.settings.bulk.max_operations,
                "maxPayloadSize": state.settings.bulk.max_payload_bytes,
            },
            "filter": {"supported": true, "maxResults": state.settings.max_results},
            "changePassword": {"supported": true},
            "sort": {"supported": true},
            "pagination": {
                "cursor": true,
                "index": true,
                "defaultPaginationMethod": "index",
                "defaultPageSize": state.settings.max_results,
                "maxPageSize": state.settings.max_results,
            },
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A JWT in the Authorization header: 'Authorization: Bearer <token>', minted with 'scimgate token'.",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": true,
            }, {
                "type": "oauthbearertoken",
                "name": "OAuth 2.0 client credentials",
                "description": format!("A bearer token from the token endpoint {}/oauth/token: grant_type=client_credentials, client_secret_basic or client_secret_post, for a client registered with 'scimgate client add'.", base.trim_end_matches("/scim/v2")),
                "specUri": "https://www.rfc-editor.org/rfc/rfc6749#section-4.4",
                "primary": false,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{base}/ServiceProviderConfig"),
            },
    });
    if state.settings.advertise_security_events {
        // RFC 9967 §4: what the change feed may send (docs/events.md); requests are never
        // answered asynchronously.
        config["securityEvents"] = json!({
            "asyncRequest": "none",
            "eventUris": scimgate_events::event_uris(),
        });
    }
    scim_json(StatusCode::OK, &config)
}

/// A resource type as `tenant` sees it: the extensions it may use, each with whether it
/// must carry it.
fn resource_type_json(rt: ResourceType, base: &str, tenant: &str) -> Value {
    let extensions: Vec<Value> = registry::current()
        .for_tenant(rt, tenant)
        .into_iter()
        .map(|(s, required)| json!({"schema": s.id, "required": required}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name(),
        "name": rt.name(),
        "endpoint": format!("/{}", rt.endpoint()),
        "description": rt.core_schema().description,
        "schema": rt.core_schema().id,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", rt.name())},
    })
}

/// The schemas `tenant` sees: the built-in ones and the operator's it may use.
fn tenant_schemas(tenant: &str) -> Vec<&'static Schema> {
    let registry = registry::current();
    let mut out: Vec<&'static Schema> = schemas::all().to_vec();
    out.extend(
        registry
            .operator()
            .iter()
            .filter(|e| e.applies_to(tenant))
            .map(|e| e.schema),
    );
    out
}

fn list_response(items: Vec<Value>) -> HttpResponse {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": items.len(),
            "itemsPerPage": items.len(),
            "startIndex": 1,
            "Resources": items,
        }),
    )
}

async fn resource_types(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> HttpResponse {
    let base = scim_base(&req, &state.settings);
    list_response(
        ResourceType::ALL
            .iter()
            .map(|rt| resource_type_json(*rt, &base, &principal.tenant))
            .collect(),
    )
}

async fn resource_type(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rt = ResourceType::from_name(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no resource type '{name}'")))?;
    Ok(scim_json(
        StatusCode::OK,
        &resource_type_json(rt, &scim_base(&req, &state.settings), &principal.tenant),
    ))
}

async fn schema_list(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> HttpResponse {
    let base = scim_base(&req, &state.settings);
    list_response(
        tenant_schemas(&principal.tenant)
            .iter()
            .map(|s| s.to_json(&format!("{base}/Schemas/{}", s.id)))
            .collect(),
    )
}

async fn schema(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = tenant_schemas(&principal.tenant)
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ApiError::NotFound(format!("no schema '{id}'")))?;
    let base = scim_base(&req, &state.settings);
    Ok(scim_json(
        StatusCode::OK,
        &s.to_json(&format!("{base}/Schemas/{}", s.id)),
    ))
}
