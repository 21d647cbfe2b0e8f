//! `HEAD` (RFC 9110 §9.3.2): every resource that answers GET answers HEAD with the same
//! status and headers. The request is served as a GET; the HTTP codec, which saw the
//! original method, sends the headers (with the body's length) and no body.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
