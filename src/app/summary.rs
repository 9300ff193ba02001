//! `tollbooth serve`: build, say what is running and how, serve until stopped.

use std::io::IsTerminal;

use super::{Application, TokenSource};
use crate::config::Settings;

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?.yield_to_workers();
    print_summary(&application);
    application.run_until_stopped().await
}

/// Printed once at start, for the owner. The authorize URL is a secret: it is shown in full
/// only on a terminal, so it never lands in a log collector.
fn print_summary(app: &Application) {
    let s = app.settings();
    let url = app.authorize_url();
    let shown_url = if std::io::stdout().is_terminal() {
        url
    } else {
        format!(
            "{}/authorize/<secret; print it with `tollbooth authorize-url`>",
            s.public_url
        )
    };
    let token_note = match app.token_source() {
        TokenSource::Environment => "token from AUTHORIZE_TOKEN",
        TokenSource::Stored => "token generated earlier and kept in the database",
        TokenSource::Generated => "token generated now and kept in the database",
    };
    let owner = match &s.owner {
        Some(owner) => owner.to_string(),
        None => "not set (FXN_OWNER): predictors of every owner are accepted".into(),
    };
    let stripe = if s.stripe_secret_key.is_some() {
        format!("API at {}", s.stripe_api_base)
    } else {
        "off (STRIPE_SECRET_KEY not set): only keys issued with `tollbooth keys issue` give access"
            .into()
    };
    let admin = if s.admin_tokens.is_empty() {
        "off (ADMIN_TOKEN not set)".to_owned()
    } else {
        let labels: Vec<&str> = s.admin_tokens.iter().map(|t| t.label.as_str()).collect();
        format!(
            "{}/admin/api/v1 (tokens: {}; document at /admin/api/openapi.json)",
            s.public_url,
            labels.join(", ")
        )
    };
    println!(
        "tollbooth {version} listening on http://{host}:{port}\n\
         \x20 database   {db} ({engine})\n\
         \x20 owner      {owner}\n\
         \x20 authorize  {shown_url}\n\
         \x20            ({token_note}; paste it into Function as your authorizationUrl)\n\
         \x20 stripe     {stripe}\n\
         \x20 admin      {admin}",
        version = env!("CARGO_PKG_VERSION"),
        host = s.host,
        port = app.port(),
        db = s.database_display(),
        engine = app.store().engine(),
    );
}
