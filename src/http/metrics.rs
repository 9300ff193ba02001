//! `GET /metrics` on its own listener (`METRICS_ADDR`), in Prometheus' text format: what
//! [`Metrics`] counted, and what is read at scrape time (the view, the webhook inbox, the
//! meter outbox, Stripe's calls, the process). Fly scrapes it from fly.toml's `[metrics]`.
//! Nothing here carries a key, a customer or a token: no label is per key or per customer.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::clock::unix_now;
use crate::gate::Gate;
use crate::health::Health;
use crate::metrics::{Exposition, Metrics};
use crate::store::Backlog;
use crate::stripe::StripeApi;

/// A scrape waits this long at most for the database's counts; past it they are left out
/// and `tollbooth_database_up` says 0.
const DATABASE_WAIT: Duration = Duration::from_secs(2);

/// Where each figure of a scrape comes from.
pub struct Sources {
    pub metrics: Arc<Metrics>,
    pub gate: Arc<Gate>,
    pub health: Arc<Health>,
    /// The webhook inbox's and the meter outbox's counts.
    pub store: Arc<dyn Backlog>,
    /// Present when Stripe is configured.
    pub stripe: Option<StripeApi>,
}

/// The metrics listener: one worker, no signal handling of its own (the service stops it).
pub fn server(listener: TcpListener, sources: Sources) -> std::io::Result<Server> {
    let sources = web::Data::new(sources);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(sources.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .client_request_timeout(Duration::from_secs(5))
    .listen(listener)?
    .run())
}

async fn scrape(sources: web::Data<Sources>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render(&sources, unix_now()).await)
}

/// One scrape's text.
pub async fn render(sources: &Sources, now: i64) -> String {
    let mut out = Exposition::default();
    sources.metrics.write(&mut out);
    let gate = &sources.gate;
    let one = |value: f64| [(vec![], value)];
    out.gauge(
        "tollbooth_view_loaded",
        "1 once the whole ledger is in memory (before that, each key is read from the database).",
        one(if gate.is_loaded() { 1.0 } else { 0.0 }),
    );
    out.gauge(
        "tollbooth_view_version",
        "The ledger version the in-memory view was built at.",
        one(gate.version() as f64),
    );
    let age = |at: Option<i64>| at.map(|at| (vec![], (now - at).max(0) as f64));
    out.gauge(
        "tollbooth_view_age_seconds",
        "Seconds since the view was last found current with the ledger.",
        age(sources.health.view().last_ok),
    );
    out.gauge(
        "tollbooth_usage_written_age_seconds",
        "Seconds since counted use was last written to the database.",
        age(sources.health.usage().last_ok),
    );
    out.gauge(
        "tollbooth_keys_loaded",
        "Active keys in the in-memory view.",
        one(gate.key_count() as f64),
    );
    out.gauge(
        "tollbooth_customers_loaded",
        "Customers holding a key, in the in-memory view.",
        one(gate.customer_count() as f64),
    );
    let backlog = tokio::time::timeout(DATABASE_WAIT, sources.store.backlog()).await;
    let backlog = match backlog {
        Ok(Ok(counts)) => Some(counts),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "Metrics could not read the backlog");
            None
        }
        Err(_) => {
            tracing::warn!("Metrics gave up waiting for the database");
            None
        }
    };
    out.gauge(
        "tollbooth_database_up",
        "1 if this scrape could read the database.",
        one(if backlog.is_some() { 1.0 } else { 0.0 }),
    );
    if let Some(counts) = backlog {
        out.gauge(
            "tollbooth_webhook_inbox_backlog",
            "Webhook events received and not yet processed, and of them those that failed at least once.",
            [
                (vec![("state", "waiting")], counts.events_waiting as f64),
                (vec![("state", "failing")], counts.events_failing as f64),
            ],
        );
        out.gauge(
            "tollbooth_meter_reports_pending",
            "Billing Meter events not yet accepted by Stripe.",
            one(counts.meter_reports_unsent as f64),
        );
    }
    if let Some(stripe) = &sources.stripe {
        let calls = stripe.calls();
        out.counter(
            "tollbooth_stripe_requests_total",
            "Requests to the Stripe API, by the HTTP status of their last answer (error: none came).",
            calls
                .iter()
                .map(|(status, n)| (vec![("status", status.as_str())], *n)),
        );
    }
    process(&mut out);
    out.finish()
}

/// The process's resident memory and CPU time, from /proc (Linux, where the service runs).
fn process(out: &mut Exposition) {
    let page = rustix::param::page_size() as f64;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    if let Some(resident) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
    {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            [(vec![], resident * page)],
        );
    }
    // Fields 14 and 15 of /proc/self/stat, after the command name (which may hold spaces).
    if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks)
        })
    {
        out.counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            [(vec![], cpu)],
        );
    }
}
