//! The change feed's HTTP side: the public key its events are signed with, as a JWKS
//! (RFC 7517), which needs no token: it is public, and a receiver fetches it to verify.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(state.feed_key.jwks().to_string())
}
