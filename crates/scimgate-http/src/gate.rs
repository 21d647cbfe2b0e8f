//! The admission gate on `/scim/v2`: each authenticated request holds its place among its
//! tenant's share of the requests in the works (see `admission`) until its answer is ready.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::auth::authenticated;
use crate::error::ApiError;

/// Holds the request's slot while the handler runs; authenticated requests only (the
/// others are refused before any work is done).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some((state, principal)) = authenticated(&req) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    state.at_once.saw(&principal.tenant);
    let admitted = match state.admission.enter(&principal.tenant).await {
        Ok(admitted) => admitted,
        // Answered as a response, not returned as an error, so that the request id, the
        // log line, the metrics and the audit trail (all outside this gate) see it.
        Err(busy) => {
            // `error_response` keeps the error on the answer, for the audit row's detail.
            return Ok(req
                .error_response(ApiError::Overloaded(busy))
                .map_into_boxed_body());
        }
    };
    let resp = next.call(req).await?.map_into_boxed_body();
    drop(admitted);
    Ok(resp)
}
