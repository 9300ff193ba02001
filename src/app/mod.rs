//! The composition root: builds the service from settings and runs it until it is stopped,
//! for `main` and for tests alike. Nothing in the library imports it.

pub mod jobs;
mod summary;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Notify, watch};

use crate::config::Settings;
use crate::domain::random_base62;
use crate::gate::{Gate, GateRules, Links};
use crate::http::middleware::{request_span, security_headers};
use crate::http::session::Sessions;
use crate::http::state::AuthorizeToken;
use crate::http::{self, AppState, Webhooks};
use crate::ledger::Ledger;
use crate::store::{self, Db, Mirror};
use crate::stripe::{StripeApi, Syncer};

pub use summary::serve;

/// Where the authorize token came from, for the start-up summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Environment,
    Stored,
    Generated,
}

pub struct Application {
    port: u16,
    server: Server,
    /// Present when Stripe is configured: the Stripe jobs run.
    stripe_api: Option<StripeApi>,
    settings: Settings,
    state: web::Data<AppState>,
    authorize_token: SecretString,
    token_source: TokenSource,
}

impl Application {
    /// Opens and migrates the database, loads the ledger view and binds the port; the server
    /// starts answering when [`Self::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("Failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let mut settings = settings;
        if settings.public_url_is_default {
            settings.public_url = format!("http://localhost:{port}");
        }
        let store = store::connect(&settings.database_url).await?;
        store.migrate().await?;
        let (authorize_token, token_source) = authorize_token(&settings, store.as_ref()).await?;
        let gate = Arc::new(Gate::new(GateRules {
            owner: settings.owner.clone(),
            past_due_grace: settings.past_due_grace.as_secs() as i64,
        }));
        // The whole ledger is loaded in the background (the ledger poller's first round), so the
        // service answers at once after a start: until then the gate reads each key's
        // customer from the database.
        let links = if settings.stripe_secret_key.is_some() {
            Links {
                plans: Some(format!("{}/", settings.public_url)),
                account: Some(format!("{}/account", settings.public_url)),
            }
        } else {
            Links::default()
        };
        let syncer = settings
            .stripe_api()?
            .map(|api| Syncer::new(api, Arc::clone(&store) as Arc<dyn Mirror>));
        let webhooks = match (&syncer, settings.stripe_webhook_secrets.is_empty()) {
            (Some(_), false) => Some(Webhooks {
                secrets: settings.stripe_webhook_secrets.clone(),
                tolerance: settings.webhook_tolerance.as_secs() as i64,
                wake: Arc::new(Notify::new()),
            }),
            _ => None,
        };
        let session_secret = match &settings.session_secret {
            Some(secret) => secret.clone(),
            None => SecretString::from(
                store
                    .setting_or_insert("session_secret", &random_base62(43))
                    .await?,
            ),
        };
        let ledger = Arc::new(Ledger::new(
            Arc::clone(&store),
            Some(Arc::clone(&gate)),
            settings.key_prefix.clone(),
            syncer.clone(),
            settings.public_url.clone(),
        ));
        let state = web::Data::new(AppState {
            gate,
            ledger,
            links,
            webhooks,
            sessions: Sessions::new(session_secret, &settings.public_url),
            owner_label: settings
                .owner
                .as_ref()
                .map_or_else(|| "the owner".to_owned(), |o| o.to_string()),
            store,
            authorize_token: AuthorizeToken::new(&authorize_token),
        });

        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(security_headers())
                .wrap(from_fn(request_span))
                .app_data(app_state.clone())
                .configure(http::configure)
        })
        .shutdown_timeout(10);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            stripe_api: syncer.as_ref().map(|s| s.api().clone()),
            settings,
            state,
            authorize_token,
            token_source,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully, as SIGTERM does.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn store(&self) -> Arc<Db> {
        Arc::clone(&self.state.store)
    }

    pub fn gate(&self) -> Arc<Gate> {
        Arc::clone(&self.state.gate)
    }

    /// The URL to paste into Function as the account's authorizationUrl. It holds the secret.
    pub fn authorize_url(&self) -> String {
        format!(
            "{}/authorize/{}",
            self.settings.public_url,
            self.authorize_token.expose_secret()
        )
    }

    pub fn token_source(&self) -> TokenSource {
        self.token_source
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Serves until SIGTERM, Ctrl-C or [`Self::handle`]`.stop()`, then writes counted use.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let state = self.state.clone().into_inner();
        let settings = &self.settings;
        let mut tasks = vec![
            tokio::spawn(jobs::ledger_poller::run(
                Arc::clone(&state.ledger),
                Arc::clone(&state.gate),
                Arc::clone(&state.store),
                settings.ledger_poll_interval,
                stopped.clone(),
            )),
            tokio::spawn(jobs::usage_flusher::run(
                Arc::clone(&state.gate),
                Arc::clone(&state.store),
                settings.usage_flush_interval,
                stopped,
            )),
        ];
        if let Some(webhooks) = &state.webhooks {
            tasks.push(tokio::spawn(jobs::webhook_worker::run(
                Arc::clone(&state.ledger),
                Arc::clone(&state.store),
                Arc::clone(&webhooks.wake),
                stop.subscribe(),
            )));
        }
        if let Some(api) = self.stripe_api.clone() {
            tasks.push(tokio::spawn(jobs::meter_reporter::run(
                api,
                Arc::clone(&state.store),
                settings.usage_flush_interval.max(Duration::from_secs(1)),
                stop.subscribe(),
            )));
            tasks.push(tokio::spawn(jobs::reconcile::run(
                Arc::clone(&state.ledger),
                settings.reconcile_every,
                stop.subscribe(),
            )));
        }
        let served = self.server.await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        let flushed = jobs::usage_flusher::final_flush(&state.gate, state.store.as_ref()).await;
        match &flushed {
            Ok(n) => tracing::info!(predictions = n, "Usage flushed; stopped"),
            Err(e) => tracing::error!(error = ?e, "Failed to flush usage at shutdown"),
        }
        state.store.close().await;
        served.context("The HTTP server failed")?;
        flushed.map(|_| ())
    }
}

/// The token from `AUTHORIZE_TOKEN`, or one generated once and kept in the database so the
/// URL pasted into Function stays valid across restarts.
async fn authorize_token(
    settings: &Settings,
    store: &Db,
) -> anyhow::Result<(SecretString, TokenSource)> {
    if let Some(token) = &settings.authorize_token {
        return Ok((token.clone(), TokenSource::Environment));
    }
    let generated = random_token();
    let stored = store
        .setting_or_insert("authorize_token", &generated)
        .await?;
    let source = if stored == generated {
        TokenSource::Generated
    } else {
        TokenSource::Stored
    };
    Ok((SecretString::from(stored), source))
}

/// 43 base62 characters: over 256 bits.
fn random_token() -> String {
    random_base62(43)
}
