//! The stylesheet and the copy-button script, compiled into the binary: no external assets.

use actix_web::HttpResponse;

const STYLE: &str = include_str!("../../../static/style.css");
const COPY: &str = include_str!("../../../static/copy.js");

pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn copy_script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", COPY)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}
