//! Builds the service from settings, for `main` and for tests alike.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, watch};
use tracing::Instrument as _;

use crate::config::Settings;
use crate::domain::{KeyPrefix, random_base62};
use crate::gate::{Gate, GateRules, Links};
use crate::routes;
use crate::session::Sessions;
use crate::store::{self, Store};
use crate::stripe::{Syncer, meters, worker};

/// What every request handler can reach.
pub struct AppState {
    pub gate: Arc<Gate>,
    pub store: Arc<dyn Store>,
    pub links: Links,
    /// Present when Stripe is configured: the pages sell, the account links to billing.
    pub syncer: Option<Syncer>,
    pub sessions: Sessions,
    pub public_url: String,
    pub key_prefix: KeyPrefix,
    /// `@owner`, or `the owner` when FXN_OWNER is unset, for page copy.
    pub owner_label: String,
    /// Present when Stripe webhooks are configured.
    pub webhooks: Option<Webhooks>,
    authorize_token_hash: [u8; 32],
}

/// The webhook route's secrets, and the bell that wakes the inbox worker.
pub struct Webhooks {
    pub secrets: Vec<SecretString>,
    pub tolerance: i64,
    pub wake: Arc<Notify>,
}

impl AppState {
    /// Constant-time over fixed-length digests, so neither content nor length leaks.
    pub fn authorize_token_matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest.ct_eq(&self.authorize_token_hash).into()
    }
}

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
    syncer: Option<Syncer>,
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
        // The whole ledger is loaded in the background (`poll_ledger`'s first round), so the
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
            .map(|api| Syncer::new(api, Arc::clone(&store)));
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
        let state = web::Data::new(AppState {
            gate,
            links,
            webhooks,
            syncer: syncer.clone(),
            sessions: Sessions::new(session_secret, &settings.public_url),
            public_url: settings.public_url.clone(),
            key_prefix: settings.key_prefix.clone(),
            owner_label: settings
                .owner
                .as_ref()
                .map_or_else(|| "the owner".to_owned(), |o| o.to_string()),
            store,
            authorize_token_hash: Sha256::digest(authorize_token.expose_secret().as_bytes()).into(),
        });

        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(security_headers())
                .wrap(from_fn(request_span))
                .app_data(app_state.clone())
                .configure(routes::configure)
        })
        .shutdown_timeout(10);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            syncer,
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

    pub fn store(&self) -> Arc<dyn Store> {
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
        let poller = tokio::spawn(poll_ledger(
            Arc::clone(&state),
            self.settings.ledger_poll_interval,
            stopped.clone(),
        ));
        let flusher = tokio::spawn(flush_usage(
            Arc::clone(&state),
            self.settings.usage_flush_interval,
            stopped,
        ));
        let mut stripe_tasks = Vec::new();
        if let Some(syncer) = self.syncer.clone() {
            if let Some(webhooks) = &state.webhooks {
                stripe_tasks.push(tokio::spawn(worker::run(
                    syncer.clone(),
                    Arc::clone(&state.store),
                    Arc::clone(&state.gate),
                    Arc::clone(&webhooks.wake),
                    stop.subscribe(),
                )));
            }
            stripe_tasks.push(tokio::spawn(meters::run(
                syncer.api().clone(),
                Arc::clone(&state.store),
                self.settings
                    .usage_flush_interval
                    .max(Duration::from_secs(1)),
                stop.subscribe(),
            )));
            stripe_tasks.push(tokio::spawn(reconcile(
                syncer,
                Arc::clone(&state),
                self.settings.reconcile_every,
                stop.subscribe(),
            )));
        }
        let served = self.server.await;
        let _ = stop.send(true);
        let _ = poller.await;
        let _ = flusher.await;
        for task in stripe_tasks {
            let _ = task.await;
        }
        let flushed = final_flush(&state).await;
        match &flushed {
            Ok(n) => tracing::info!(predictions = n, "Usage flushed; stopped"),
            Err(e) => tracing::error!(error = ?e, "Failed to flush usage at shutdown"),
        }
        state.store.close().await;
        served.context("The HTTP server failed")?;
        flushed.map(|_| ())
    }
}

/// The last flush, after the HTTP workers have stopped. Handlers run on the workers' own
/// runtimes, and pooled PostgreSQL connections they opened die with them; a failed attempt
/// discards such a connection, so a few attempts reach one opened here.
async fn final_flush(state: &AppState) -> anyhow::Result<usize> {
    let mut attempt = 0;
    loop {
        match state
            .gate
            .flush(state.store.as_ref(), unix_now(), true)
            .await
        {
            Err(e) if attempt < 10 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "Shutdown flush failed; trying another connection");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

/// Picks up changes made by other processes (the CLI, other instances): at once when the
/// engine signals them (PostgreSQL `NOTIFY`), and within one poll interval in any case.
async fn poll_ledger(state: Arc<AppState>, every: Duration, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = state.store.change_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { signal.as_ref().expect("guarded").notified().await }, if signal.is_some() => {}
            _ = stopped.changed() => return,
        }
        match state.gate.refresh(state.store.as_ref(), unix_now()).await {
            Ok(true) => tracing::info!(
                keys = state.gate.key_count(),
                "Ledger changed; view reloaded"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = ?e, "Failed to refresh the ledger view"),
        }
    }
}

/// The periodic full sync from Stripe, which heals whatever webhooks missed.
async fn reconcile(
    syncer: Syncer,
    state: Arc<AppState>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        match syncer.reconcile(&|_| {}).await {
            Ok(report) => tracing::info!(%report, "Reconciled with Stripe"),
            Err(e) => tracing::warn!(error = ?e, "Reconcile with Stripe failed; will try again"),
        }
        if let Err(e) = state.gate.refresh(state.store.as_ref(), unix_now()).await {
            tracing::warn!(error = ?e, "Failed to refresh the view after reconcile");
        }
    }
}

/// Writes counted use behind the hot path once per interval, and reads back what other
/// instances wrote, so a quota shared by several instances is overshot by at most what they
/// allow in about two intervals (README, "Several machines").
async fn flush_usage(state: Arc<AppState>, every: Duration, mut stopped: watch::Receiver<bool>) {
    /// Read back a little further than the last read: other instances' clocks and commits lag.
    const OVERLAP: i64 = 5;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    /// Activity (hourly report counts, each key's last use) is written about this often: it
    /// needs no exactness, and under load it is as many rows as the counters or more.
    const ACTIVITY_EVERY: Duration = Duration::from_secs(60);
    let instance = format!("inst_{}", random_base62(16));
    let mut last_read = unix_now();
    let mut activity_written = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        let with_activity = activity_written.elapsed() >= ACTIVITY_EVERY;
        if with_activity {
            activity_written = tokio::time::Instant::now();
        }
        if let Err(e) = state
            .gate
            .flush(state.store.as_ref(), unix_now(), with_activity)
            .await
        {
            tracing::warn!(error = ?e, "Failed to flush usage; will retry");
        }
        let now = unix_now();
        // Alone, this instance's counts are the whole truth: nothing to read back.
        match state.store.heartbeat(&instance, now).await {
            Ok(0) => {
                last_read = now;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "Failed to record this instance's heartbeat"),
        }
        match state.store.usage_since(last_read - OVERLAP).await {
            Ok(rows) => {
                state.gate.merge_usage(&rows);
                last_read = now;
            }
            Err(e) => tracing::warn!(error = ?e, "Failed to read other instances' usage"),
        }
    }
    if let Err(e) = state.store.leave(&instance).await {
        tracing::warn!(error = ?e, "Failed to remove this instance's heartbeat");
    }
}

/// The token from `AUTHORIZE_TOKEN`, or one generated once and kept in the database so the
/// URL pasted into Function stays valid across restarts.
async fn authorize_token(
    settings: &Settings,
    store: &dyn Store,
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

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sent with every response. Scripts and styles come only from this service; no page may be
/// framed; no Referer leaves for another site (welcome URLs carry a session id), while
/// same-site form posts keep their `Origin`, which the CSRF check reads.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
}

/// A span per request naming the matched route pattern, never the raw path (the authorize path
/// carries the secret token), with the response status. Built only when INFO is enabled.
async fn request_span(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !tracing::enabled!(tracing::Level::INFO) {
        return next.call(request).await;
    }
    let route = request
        .match_pattern()
        .or_else(|| routes::authorize_pattern(request.path()))
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let response = next.call(request).instrument(span.clone()).await;
    let status = match &response {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    span.record("status", status.as_u16());
    response
}
