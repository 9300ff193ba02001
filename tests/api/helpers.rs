use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use actix_web::dev::ServerHandle;
use sqlx::Connection;
use tokio::task::JoinHandle;
use tollbooth::app::Application;
use tollbooth::clock::unix_now;
use tollbooth::config::Settings;
use tollbooth::domain::{CalendarPeriod, KeyCap, KeyPrefix, Predictors, calendar, random_base62};
use tollbooth::gate::Gate;
use tollbooth::ledger::{CustomerRef, GrantSpec, IssueRequest, Ledger};
use tollbooth::store::sql::sql;
use tollbooth::store::{Db, InboxEvent, LedgerRows, Snapshot};
use tollbooth::telemetry;

pub const OWNER: &str = "acme";
pub const TOKEN: &str = "test-authorize-token-0123456789";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        telemetry::init_subscriber("debug", false, false, std::io::stdout);
    } else {
        telemetry::init_subscriber("debug", false, false, std::io::sink);
    }
});

/// A database of its own for one test: an SQLite file in a temporary folder, or a new
/// PostgreSQL database on the server of `TEST_DATABASE_URL`. Either goes when the test is
/// done with it.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL server's own URL and the database's name, to drop it by.
    dropped_by: Option<(String, String)>,
}

/// Drops the test's PostgreSQL database (the server would keep each run's hundred and more),
/// closing whatever the test left connected to it. The test's runtime may be ending, so a
/// runtime of its own does it, on a thread of its own, waited for: the last test's database
/// goes before the process ends.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((base, name)) = self.dropped_by.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("Failed to start a runtime to drop a test database");
            runtime.block_on(on_server(
                &base,
                format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
            ))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("Could not drop a test database: {e}");
        }
    }
}

impl TestDatabase {
    pub async fn fresh() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) => {
                let name = format!("tollbooth_test_{}", random_base62(12).to_lowercase());
                on_server(&base, format!(r#"CREATE DATABASE "{name}""#))
                    .await
                    .expect("TEST_DATABASE_URL must reach PostgreSQL and let it create a database");
                Self {
                    url: with_database_name(&base, &name),
                    _dir: None,
                    dropped_by: Some((base, name)),
                }
            }
            Err(_) => {
                let dir = tempfile::tempdir().expect("Failed to create a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("tollbooth.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    dropped_by: None,
                }
            }
        }
    }
}

/// Runs one statement on the PostgreSQL server of `base` (creating or dropping a database);
/// once it ran, how the connection closes does not matter.
async fn on_server(base: &str, statement: String) -> sqlx::Result<()> {
    let mut admin = sqlx::PgConnection::connect(base).await?;
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await?;
    admin.close().await.ok();
    Ok(())
}

fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// A usage journal path no other test uses.
pub fn journal_path() -> String {
    std::env::temp_dir()
        .join(format!("tollbooth-test-{}.journal", random_base62(12)))
        .display()
        .to_string()
}

/// Settings as an owner would set them, for one test's database.
pub fn test_settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("FXN_OWNER", OWNER),
        ("AUTHORIZE_TOKEN", TOKEN),
        ("WORKERS", "2"),
        ("USAGE_FLUSH_INTERVAL", "100ms"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // Each test's usage journal of its own, out of the source tree.
    vars.insert("USAGE_JOURNAL".into(), journal_path());
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings are valid")
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener, when `METRICS_ADDR` was set.
    pub metrics_address: Option<String>,
    pub store: TestStore,
    pub gate: Arc<Gate>,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    settings: Settings,
    handle: ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDatabase::fresh().await;
    let settings = test_settings(&db.url, extra);
    start(db, settings).await
}

/// The service on an existing database, with the test settings.
pub async fn start_on(db: TestDatabase) -> TestApp {
    start_on_with(db, &[]).await
}

/// The service on an existing database, with the test settings and `extra`.
pub async fn start_on_with(db: TestDatabase, extra: &[(&str, &str)]) -> TestApp {
    let settings = test_settings(&db.url, extra);
    start(db, settings).await
}

async fn start(db: TestDatabase, settings: Settings) -> TestApp {
    LazyLock::force(&TRACING);
    let app = Application::build(settings.clone())
        .await
        .expect("Failed to build the application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let store = app.store();
    let gate = app.gate();
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        store: TestStore(store),
        gate,
        client: reqwest::Client::new(),
        db,
        settings,
        handle,
        task,
    }
}

/// The service's database, with what tests read from it directly.
pub struct TestStore(pub Arc<Db>);

impl std::ops::Deref for TestStore {
    type Target = Arc<Db>;

    fn deref(&self) -> &Arc<Db> {
        &self.0
    }
}

impl TestStore {
    /// A webhook event as the inbox holds it.
    pub async fn stripe_event(&self, id: &str) -> anyhow::Result<Option<InboxEvent>> {
        self.0
            .fetch_optional(
                sql(
                    "SELECT id, event_type, created, payload, received_at, attempts, last_error, \
                        processed_at FROM stripe_events WHERE id = $1",
                )
                .bind(id),
            )
            .await
    }

    pub async fn load_ledger(&self, now: i64) -> anyhow::Result<LedgerRows> {
        load_ledger(self.0.as_ref(), now).await
    }
}

/// The whole ledger as the gate reads it, held as rows.
pub async fn load_ledger(store: &dyn Snapshot, now: i64) -> anyhow::Result<LedgerRows> {
    let mut rows = LedgerRows::default();
    rows.version = store.load_ledger_into(now, &mut rows).await?;
    Ok(rows)
}

/// What `tollbooth keys issue` would be told.
#[derive(Default, Clone)]
pub struct Issue {
    pub email: Option<&'static str>,
    pub customer: Option<String>,
    pub grant: Option<&'static str>,
    pub quota: Option<(u64, CalendarPeriod)>,
    pub credits: Option<u64>,
    pub expires: Option<&'static str>,
    pub name: Option<&'static str>,
    pub no_grant: bool,
    /// The key's own cap: `100/day`, `5000/month`, `10000`.
    pub cap: Option<&'static str>,
}

pub struct IssuedForTest {
    pub key: String,
    pub key_id: String,
    pub customer_id: String,
}

impl TestApp {
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize/{TOKEN}", self.address)
    }

    pub async fn authorize(&self, tag: &str, key: &str) -> reqwest::Response {
        self.client
            .post(self.authorize_url())
            .json(&serde_json::json!({ "tag": tag, "accessKey": key }))
            .send()
            .await
            .expect("Failed to call authorize")
    }

    /// Status and parsed JSON body.
    pub async fn authorize_json(&self, tag: &str, key: &str) -> (u16, serde_json::Value) {
        let response = self.authorize(tag, key).await;
        let status = response.status().as_u16();
        let body = response.json().await.expect("authorize answers JSON");
        (status, body)
    }

    pub async fn post_raw(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self.client.post(url).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send().await.expect("Failed to send a request")
    }

    /// Issues a key as the CLI does, and applies it at once (as the server does for its own
    /// writes).
    pub async fn issue(&self, issue: Issue) -> IssuedForTest {
        let issued = issue_with(&self.store, issue).await;
        self.refresh().await;
        issued
    }

    pub async fn refresh(&self) {
        self.gate
            .refresh(self.store.as_ref(), unix_now())
            .await
            .expect("Failed to refresh the view");
    }

    /// Stops the way SIGTERM does: in-flight requests finish, then usage is flushed.
    pub async fn stop(self) -> TestDatabase {
        self.handle.stop(true).await;
        self.task
            .await
            .expect("server task panicked")
            .expect("server stopped with an error");
        self.db
    }

    /// A second instance of the service on the same database, as on a second machine.
    pub async fn another_instance(&self) -> TestApp {
        let db = TestDatabase {
            url: self.db.url.clone(),
            _dir: None,
            dropped_by: None,
        };
        start(db, self.settings.clone()).await
    }

    /// A graceful stop followed by a start on the same database.
    pub async fn restart(self) -> TestApp {
        let settings = self.settings.clone();
        let db = self.stop().await;
        start(db, settings).await
    }
}

/// Asserts a 400 whose JSON body carries an `error` message containing `expected`.
pub async fn assert_denied(app: &TestApp, tag: &str, key: &str, expected: &str) {
    let (status, body) = app.authorize_json(tag, key).await;
    assert_eq!(status, 400, "expected a denial for {tag}, got {body}");
    let message = body["error"]
        .as_str()
        .expect("a denial carries an error message");
    assert!(
        message.contains(expected),
        "message {message:?} should contain {expected:?}"
    );
}

pub async fn assert_allowed(app: &TestApp, tag: &str, key: &str) {
    let (status, body) = app.authorize_json(tag, key).await;
    assert_eq!(status, 200, "expected an allow for {tag}, got {body}");
    assert!(
        body.get("error").is_none(),
        "an allow must not carry an error key: {body}"
    );
    assert_eq!(body["authorized"], true);
}

/// Issues a key as the CLI does, straight into a store.
pub async fn issue_with(store: &Arc<Db>, issue: Issue) -> IssuedForTest {
    let customer = match (&issue.customer, issue.email) {
        (Some(id), _) => CustomerRef::Id(id.clone()),
        (None, email) => CustomerRef::Email(email.unwrap_or("ada@example.com").to_owned()),
    };
    let grant = (!issue.no_grant).then(|| GrantSpec {
        predictors: Predictors::parse(issue.grant.unwrap_or("@acme/*"), None).unwrap(),
        quota: issue.quota,
        credits: issue.credits,
        last_day: issue.expires.map(|d| calendar::parse_date(d).unwrap()),
        note: None,
    });
    // As the CLI does: no gate of its own; a running server picks the key up by polling.
    let ledger = Ledger::new(
        Arc::clone(store),
        None,
        KeyPrefix::parse("tb").unwrap(),
        None,
        "http://localhost".into(),
    );
    let issued = ledger
        .issue_key(IssueRequest {
            customer,
            name: issue.name.map(str::to_owned),
            grant,
            cap: issue.cap.map(|c| KeyCap::parse(c).unwrap()),
        })
        .await
        .expect("Failed to issue a key");
    IssuedForTest {
        key: issued.key.as_ref().to_owned(),
        key_id: issued.key_id,
        customer_id: issued.customer_id,
    }
}
