//! The composition root: builds the service from settings and runs it until it is stopped,
//! for `main` and for tests alike. Nothing in the library imports it.

pub mod jobs;
mod summary;

use jobs::usage_journal::Journal;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::domain::random_base62;
use crate::gate::{Gate, GateRules, Links};
use crate::health::Health;
use crate::http::limits::ClientAddress;
use crate::http::middleware::{PAGES_AT_ONCE, security_headers};
use crate::http::session::Sessions;
use crate::http::state::{AuthorizeToken, LinkLimits};
use crate::http::{self, AppState, Webhooks};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::notify::email::Mailer;
use crate::notify::webhook::OwnerWebhook;
use crate::store::{self, Db, Mirror, Usage as _};
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
    /// Where counted use waits while the database cannot be written.
    journal: Arc<Mutex<Journal>>,
    /// This process's name among the instances on the database (heartbeats, the usage log).
    instance: String,
    settings: Settings,
    state: web::Data<AppState>,
    authorize_token: SecretString,
    token_source: TokenSource,
    /// Run the background threads below the HTTP workers (`jobs/priority.rs`).
    yield_to_workers: bool,
    /// Bound when `METRICS_ADDR` is set; served once running.
    metrics_listener: Option<TcpListener>,
}

impl Application {
    /// Opens and migrates the database, loads the ledger view and binds the port; the server
    /// starts answering when [`Self::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check_for_serving()?;
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("Failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = settings
            .metrics_addr
            .map(|addr| {
                TcpListener::bind(addr)
                    .with_context(|| format!("Failed to bind METRICS_ADDR {addr}"))
            })
            .transpose()?;
        let mut settings = settings;
        if settings.public_url_is_default {
            settings.public_url = format!("http://localhost:{port}");
        }
        let store = store::connect(&settings.database_url).await?;
        store.migrate().await?;
        // Use counted before a crash while the database could not be written, before the
        // ledger (and its counters) is read.
        let mut journal = Journal::new(settings.usage_journal.clone());
        if let Some(predictions) = journal.replay(store.as_ref()).await? {
            tracing::info!(
                predictions,
                journal = %journal.path().display(),
                "Counted use from before a crash written from the usage journal"
            );
        }
        // Use logged by a process that stopped before adding it to the counters (a crash),
        // and by any other instance (it notices and reads what is left of its own).
        let instance = format!("inst_{}", random_base62(16));
        let left = store
            .fold_every_logged_row(crate::clock::unix_now())
            .await
            .context("Failed to add logged use to the counters")?;
        if !left.is_empty() {
            tracing::info!(
                counters = left.len(),
                "Logged use from before this start added to the counters"
            );
        }
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
        let mut ledger = Ledger::new(
            Arc::clone(&store),
            Some(Arc::clone(&gate)),
            settings.key_prefix.clone(),
            syncer.clone(),
            settings.public_url.clone(),
        );
        if let Some(email) = &settings.email {
            ledger = ledger.with_mailer(Mailer::new(&email.smtp_url, &email.from)?);
        }
        if let Some((url, secret)) = &settings.owner_webhook {
            ledger = ledger.with_owner_webhook(OwnerWebhook::new(url, secret)?);
        }
        let ledger = Arc::new(ledger);
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
            health: Arc::new(Health::default()),
            pages_in_flight: Semaphore::new(PAGES_AT_ONCE),
            authorize_token: AuthorizeToken::new(&authorize_token),
            metrics: Arc::new(Metrics::default()),
            client_address: ClientAddress::new(settings.client_ip_header.as_deref()),
            link_limits: LinkLimits::default(),
        });

        let app_state = state.clone();
        // The admin API's state, only when ADMIN_TOKEN is set: its routes answer 404 without.
        let admin = http::admin::Admin::from_settings(&settings).map(web::Data::new);
        let mut server = HttpServer::new(move || {
            let admin = admin.clone();
            App::new()
                .wrap(security_headers())
                .app_data(app_state.clone())
                .configure(move |cfg| {
                    if let Some(admin) = admin {
                        cfg.app_data(admin);
                    }
                })
                .configure(http::configure)
        })
        .shutdown_timeout(10)
        // A request's head must arrive within 5 s (its body within BODY_TIMEOUT).
        .client_request_timeout(Duration::from_secs(5));
        let workers = settings.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        server = server
            .workers(workers)
            .max_connections(connections_per_worker(workers));
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            stripe_api: syncer.as_ref().map(|s| s.api().clone()),
            journal: Arc::new(Mutex::new(journal)),
            instance,
            settings,
            state,
            authorize_token,
            token_source,
            yield_to_workers: false,
            metrics_listener,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        let listener = self.metrics_listener.as_ref()?;
        Some(listener.local_addr().ok()?.port())
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

    /// Runs every thread but the HTTP workers at a lower priority, once serving: for the
    /// service run as its own process, never for one built inside another program's.
    pub fn yield_to_workers(mut self) -> Self {
        self.yield_to_workers = true;
        self
    }

    /// Serves until SIGTERM, Ctrl-C or [`Self::handle`]`.stop()`, then writes counted use.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let state = self.state.clone().into_inner();
        let settings = &self.settings;
        let mut jobs = Jobs::default();
        jobs.spawn(
            "ledger poller",
            jobs::ledger_poller::run(
                Arc::clone(&state.ledger),
                Arc::clone(&state.gate),
                Arc::clone(&state.store),
                Arc::clone(&state.health),
                settings.ledger_poll_interval,
                stopped.clone(),
            ),
        );
        // Alerts run when they have somewhere to go: the owner's webhook or email.
        let touched = state
            .ledger
            .alerts_on()
            .then(|| Arc::new(jobs::alerts::Touched::default()));
        if let Some(touched) = &touched {
            jobs.spawn(
                "alerts",
                jobs::alerts::run(
                    Arc::clone(&state.ledger),
                    Arc::clone(&state.store),
                    Arc::clone(touched),
                    Duration::from_secs(1),
                    stop.subscribe(),
                ),
            );
        }
        let flusher = jobs::usage_flusher::Flusher {
            gate: Arc::clone(&state.gate),
            store: Arc::clone(&state.store),
            journal: Arc::clone(&self.journal),
            health: Arc::clone(&state.health),
            metrics: Arc::clone(&state.metrics),
            touched,
            instance: self.instance.clone(),
        };
        jobs.spawn(
            "usage flusher",
            jobs::usage_flusher::run(flusher, settings.usage_flush_interval, stopped),
        );
        if self.yield_to_workers {
            jobs.spawn("priorities", jobs::priority::run(stop.subscribe()));
        }
        if let Some(webhooks) = &state.webhooks {
            jobs.spawn(
                "webhook worker",
                jobs::webhook_worker::run(
                    Arc::clone(&state.ledger),
                    Arc::clone(&state.store),
                    Arc::clone(&state.metrics),
                    Arc::clone(&webhooks.wake),
                    stop.subscribe(),
                ),
            );
        }
        if let Some(api) = self.stripe_api.clone() {
            jobs.spawn(
                "meter reporter",
                jobs::meter_reporter::run(
                    api,
                    Arc::clone(&state.store),
                    settings.usage_flush_interval.max(Duration::from_secs(1)),
                    stop.subscribe(),
                ),
            );
            jobs.spawn(
                "reconcile",
                jobs::reconcile::run(
                    Arc::clone(&state.ledger),
                    settings.reconcile_every,
                    stop.subscribe(),
                ),
            );
        }
        let metrics_server = match self.metrics_listener {
            Some(listener) => {
                let server = http::metrics::server(
                    listener,
                    http::metrics::Sources {
                        metrics: Arc::clone(&state.metrics),
                        gate: Arc::clone(&state.gate),
                        health: Arc::clone(&state.health),
                        store: Arc::clone(&state.store) as Arc<dyn store::Backlog>,
                        stripe: self.stripe_api.clone(),
                    },
                )
                .context("Failed to start the metrics listener")?;
                let handle = server.handle();
                jobs.spawn("metrics listener", async move {
                    if let Err(e) = server.await {
                        tracing::error!(error = %e, "The metrics listener failed");
                    }
                });
                Some(handle)
            }
            None => None,
        };
        // A job that ends before the service is stopping has failed: the service stops too,
        // with the job's name, rather than serving on without it (a supervisor such as Fly's
        // then starts it again).
        let handle = self.server.handle();
        let mut server = self.server;
        let (served, died) = tokio::select! {
            served = &mut server => (served, None),
            died = jobs.first_to_end() => {
                tracing::error!(job = died.0, reason = %died.1, "A background job stopped; stopping the service");
                handle.stop(true).await;
                (server.await, Some(died))
            }
        };
        let _ = stop.send(true);
        if let Some(metrics) = metrics_server {
            metrics.stop(true).await;
        }
        jobs.join_all().await;
        let mut journal = self.journal.lock().await;
        let flushed =
            jobs::usage_flusher::final_flush(&state.gate, state.store.as_ref(), &mut journal).await;
        match &flushed {
            Ok(n) => tracing::info!(predictions = n, "Usage flushed; stopped"),
            Err(e) => tracing::error!(error = ?e, "Failed to flush usage at shutdown"),
        }
        state.store.close().await;
        if let Some((job, reason)) = died {
            anyhow::bail!("the {job} stopped ({reason}); the service stopped with it");
        }
        served.context("The HTTP server failed")?;
        flushed.map(|_| ())
    }
}

/// Connections each HTTP worker holds at most: together, three quarters of the process's
/// open-file limit, so a flood of connections never leaves the process without a descriptor
/// for its database, and the ones beyond wait in the kernel's queue instead of failing.
fn connections_per_worker(workers: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(25_000);
    (limit * 3 / 4 / workers.max(1)).max(64)
}

/// The running background jobs, by name.
#[derive(Default)]
struct Jobs {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Jobs {
    fn spawn(&mut self, name: &'static str, job: impl Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(job).id();
        self.names.insert(id, name);
    }

    /// The first job to end, and how (a panic's message, or that it returned). Pending for
    /// ever when there is no job.
    async fn first_to_end(&mut self) -> (&'static str, String) {
        match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => (self.name(id), "it returned".to_owned()),
            Some(Err(e)) => (self.name(e.id()), panic_message(e)),
            None => std::future::pending().await,
        }
    }

    fn name(&self, id: tokio::task::Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("background job")
    }

    async fn join_all(&mut self) {
        while let Some(ended) = self.set.join_next_with_id().await {
            if let Err(e) = ended {
                let job = self.name(e.id());
                tracing::error!(job, reason = %panic_message(e), "A background job failed while stopping");
            }
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(panic) => panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .map_or_else(|| "it panicked".to_owned(), |m| format!("it panicked: {m}")),
        Err(e) => e.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_that_dies_is_named_with_its_reason() {
        let mut jobs = Jobs::default();
        jobs.spawn("steady", std::future::pending());
        jobs.spawn("flusher", async { panic!("disk on fire") });
        let (job, reason) = jobs.first_to_end().await;
        assert_eq!(job, "flusher");
        assert_eq!(reason, "it panicked: disk on fire");

        jobs.spawn("quitter", async {});
        assert_eq!(
            jobs.first_to_end().await,
            ("quitter", "it returned".to_owned())
        );
    }
}
