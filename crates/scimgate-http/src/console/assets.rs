//! The page itself: one HTML file, one script, one style sheet, compiled into the binary
//! (no CDN, nothing fetched from elsewhere; the page works without internet).

use actix_web::HttpResponse;
use actix_web::http::header;

const INDEX: &str = include_str!("../../admin/index.html");
const SCRIPT: &str = include_str!("../../admin/app.js");
const STYLE: &str = include_str!("../../admin/app.css");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        // The assets change with the binary; a short cache keeps an upgrade visible.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// `/admin` without its slash: the page's relative links need it.
pub async fn to_index() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/admin/"))
        .finish()
}

pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
