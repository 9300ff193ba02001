//! The floor: the least an actix-web server can do for Function's call. It parses the same JSON
//! body the same way and answers 200; tollbooth's authorize route is measured against it.

use std::borrow::Cow;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

#[derive(Deserialize)]
struct AuthorizeBody<'a> {
    #[serde(borrow)]
    tag: Cow<'a, str>,
    #[serde(rename = "accessKey", borrow)]
    access_key: Cow<'a, str>,
}

async fn authorize(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<AuthorizeBody>(&body) {
        Ok(input) if !input.tag.is_empty() && !input.access_key.is_empty() => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"authorized":true}"#),
        _ => HttpResponse::BadRequest().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    println!("floor listening on http://127.0.0.1:{port}");
    HttpServer::new(|| App::new().route("/authorize/{token}", web::post().to(authorize)))
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
