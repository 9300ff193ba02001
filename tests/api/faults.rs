//! A bad day: a full disk, mistakes in the configuration, files that must stay private.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{TestStore, load_ledger};
use crate::process::{count_allowed, issue, start_command, start_server};

/// `/readyz`: its status and body.
async fn readiness(client: &reqwest::Client, address: &str) -> (u16, serde_json::Value) {
    let response = client
        .get(format!("{address}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("readyz answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("readyz answers JSON"))
}

/// Polls `/readyz` until `done` holds of it, for at most `within`.
async fn wait_for_readiness(
    client: &reqwest::Client,
    address: &str,
    within: Duration,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let start = Instant::now();
    loop {
        let (status, body) = readiness(client, address).await;
        if done(status, &body) || start.elapsed() > within {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_failing(body: &serde_json::Value, part: &str) -> bool {
    body["failing"]
        .as_array()
        .is_some_and(|parts| parts.iter().any(|p| p == part))
}

/// The disk fills while predictions are counted: writes fail, readiness says so, and once
/// there is room again the writes resume and every counted prediction reaches the database.
/// A file-size limit on the process (`ulimit -f`, raised later with `prlimit`) stands in for
/// the full disk, without root. SQLite only: it is the engine on the service's own disk.
#[tokio::test]
async fn usage_writes_resume_after_the_disk_was_full_and_nothing_counted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    let key = issue(&url, &["--credits", "1000000"]).await;
    // The write-ahead log may grow to 64 KiB: a few dozen flushes and heartbeats.
    let mut command = Command::new("bash");
    command.args([
        "-c",
        "trap '' XFSZ; ulimit -S -f 64; exec \"$0\"",
        env!("CARGO_BIN_EXE_tollbooth"),
    ]);
    let server = start_command(command, &url, &[("USAGE_FLUSH_INTERVAL", "50ms")]);
    let client = reqwest::Client::new();

    let mut allowed = 0;
    let start = Instant::now();
    let full = loop {
        allowed += count_allowed(&server, &client, &key, 20).await;
        let (status, body) = readiness(&client, &server.address).await;
        if status == 503 && is_failing(&body, "usage_writes") {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the writes never failed: {body}"
        );
    };
    allowed += count_allowed(&server, &client, &key, 100).await;
    let raised = Command::new("prlimit")
        .args([
            "--pid",
            &server.pid().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .status()
        .unwrap();
    assert!(raised.success(), "prlimit could not raise the limit");
    let (status, recovered) =
        wait_for_readiness(&client, &server.address, Duration::from_secs(10), |s, _| {
            s == 200
        })
        .await;
    allowed += count_allowed(&server, &client, &key, 30).await;
    server.signal("-TERM");
    let (clean, output) = server.wait();

    assert!(full["usage_writes_failing_for_s"].is_i64(), "{full}");
    assert_eq!(
        status, 200,
        "writes resume once there is room: {recovered}\n{output}"
    );
    assert!(clean, "a clean exit after the disk was full: {output}");
    let store = TestStore(tollbooth::store::connect(&url).await.unwrap());
    let rows = load_ledger(store.as_ref(), tollbooth::clock::unix_now())
        .await
        .unwrap();
    let stored: i64 = rows.usage.iter().map(|u| u.used).sum();
    assert_eq!(
        stored as usize, allowed,
        "every prediction counted while the disk was full is in the database"
    );
}

#[tokio::test]
async fn a_database_url_that_is_not_one_is_refused_and_no_file_is_made() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "notaurl",
        "postgress://u@localhost/db",
        "mysql://u@localhost/db",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
            .arg("migrate")
            .env("DATABASE_URL", url)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url} was accepted");
        assert!(stderr.contains("DATABASE_URL"), "{url}: {stderr}");
        assert!(
            stderr.contains("sqlite://"),
            "{url}: says what to use: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was made for a mistyped URL"
    );
}

#[tokio::test]
async fn an_unreachable_postgresql_is_named_with_its_host_within_five_seconds() {
    let start = Instant::now();
    // Nothing listens on port 1.
    let output = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://tollbooth@127.0.0.1:1/ledger")
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success());
    assert!(stderr.contains("127.0.0.1:1"), "names the host: {stderr}");
    assert!(stderr.contains("refused"), "says what happened: {stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn stripe_half_configured_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .env("DATABASE_URL", &url)
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("STRIPE_SECRET_KEY", "sk_test_half")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success());
    assert!(stderr.contains("STRIPE_WEBHOOK_SECRET"), "{stderr}");
}

#[tokio::test]
async fn the_database_and_an_export_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("private.db");
    let url = format!("sqlite://{}", db.display());
    issue(&url, &["--credits", "1"]).await;
    let server = start_server(&url, &[]);
    let client = reqwest::Client::new();
    wait_for_readiness(&client, &server.address, Duration::from_secs(5), |s, _| {
        s == 200
    })
    .await;
    let export = dir.path().join("ledger.jsonl");
    let exported = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .arg("export")
        .env("DATABASE_URL", &url)
        .stdout(std::fs::File::create(&export).unwrap())
        .status()
        .unwrap();
    let modes: Vec<(String, u32)> = ["private.db", "private.db-wal", "private.db-shm"]
        .iter()
        .map(|name| {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            ((*name).to_owned(), mode & 0o777)
        })
        .collect();
    server.signal("-TERM");
    server.wait();

    assert!(exported.success());
    for (name, mode) in modes {
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the export (written through a redirect) is {mode:o}"
    );
}

/// Two thousand connections send a request's head and then nothing of its body, to the two
/// routes anyone may post to. The service runs with 1,024 file descriptors: before, it ran out
/// of them and the authorize route stopped answering. Now the pages and the webhook hold a
/// bounded number of bodies, each for `BODY_TIMEOUT` at most, and authorize keeps answering.
#[tokio::test]
async fn slow_request_bodies_cannot_starve_the_authorize_route() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let db = crate::helpers::TestDatabase::fresh().await;
    let key = issue(&db.url, &["--credits", "1000"]).await;
    let mut command = Command::new("bash");
    command.args([
        "-c",
        "ulimit -n 1024; exec \"$0\"",
        env!("CARGO_BIN_EXE_tollbooth"),
    ]);
    let server = start_command(command, &db.url, &[]);
    let address = server.address.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for n in 0..2_000 {
        let path = if n % 2 == 0 {
            "/stripe/webhook"
        } else {
            "/account/sign-in"
        };
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    let allowed = count_allowed(&server, &client, &key, 20).await;
    let took = start.elapsed();
    // Past the body deadline, every slow connection has been answered or closed.
    tokio::time::sleep(tollbooth::http::BODY_TIMEOUT + Duration::from_secs(2)).await;
    let mut still_waiting = 0;
    for stream in &mut slow {
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buffer)).await;
        if read.is_err() {
            still_waiting += 1;
        }
    }
    server.signal("-TERM");
    server.wait();

    assert_eq!(
        allowed, 20,
        "authorize answered every time while bodies were held"
    );
    assert!(
        took < Duration::from_secs(5),
        "20 authorizations took {took:?}"
    );
    assert_eq!(
        still_waiting, 0,
        "connections left waiting past the body deadline"
    );
}

/// A TCP proxy in front of PostgreSQL that can be cut, as an outage of the database (or of the
/// network to it) is: while cut, its connections are dropped and new ones closed at once.
struct Outage {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Outage {
    async fn before(target: String) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up_, links_) = (Arc::clone(&up), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up_.load(Ordering::Acquire) {
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links_.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::Release);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::Release);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        format!(
            "{scheme}://{}127.0.0.1:{}{path}",
            user.unwrap_or_default(),
            self.port
        )
    }
}

/// The host and port of a PostgreSQL URL.
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// PostgreSQL goes away under load; readiness says so within a second; the process is then
/// killed (no graceful stop) before the database comes back. What it counted during the
/// outage was kept in the usage journal and is written by the next start: nothing is lost.
/// PostgreSQL only (`TEST_DATABASE_URL`); on SQLite the database is a local file. The proxy
/// runs on the test's runtime while the test waits for processes: two threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_database_outage_loses_nothing_counted_before_the_last_flush() {
    let db = crate::helpers::TestDatabase::fresh().await;
    if !db.url.starts_with("postgres") {
        return;
    }
    let key = issue(&db.url, &["--credits", "1000000"]).await;
    let outage = Outage::before(server_of(&db.url)).await;
    let proxied = outage.url(&db.url);
    let journal = crate::helpers::journal_path();
    let settings = [
        ("USAGE_FLUSH_INTERVAL", "100ms"),
        ("USAGE_JOURNAL", journal.as_str()),
    ];
    let server = start_server(&proxied, &settings);
    let client = reqwest::Client::new();
    wait_for_readiness(&client, &server.address, Duration::from_secs(5), |s, _| {
        s == 200
    })
    .await;
    let mut allowed = count_allowed(&server, &client, &key, 50).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    outage.cut();
    let asked = Instant::now();
    let (during, body) = readiness(&client, &server.address).await;
    let answered_in = asked.elapsed();
    allowed += count_allowed(&server, &client, &key, 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = std::path::Path::new(&journal).exists();
    server.signal("-KILL");
    server.wait();
    outage.restore();
    let after = start_server(&proxied, &settings);
    wait_for_readiness(&client, &after.address, Duration::from_secs(5), |s, _| {
        s == 200
    })
    .await;
    after.signal("-TERM");
    after.wait();

    assert_eq!(during, 503, "{body}");
    assert!(is_failing(&body, "database"), "{body}");
    assert!(
        answered_in < Duration::from_secs(1),
        "readiness took {answered_in:?}"
    );
    assert!(kept, "the outage's use was kept in the journal");
    let store = TestStore(tollbooth::store::connect(&db.url).await.unwrap());
    let rows = load_ledger(store.as_ref(), tollbooth::clock::unix_now())
        .await
        .unwrap();
    let stored: i64 = rows.usage.iter().map(|u| u.used).sum();
    assert_eq!(
        stored as usize, allowed,
        "every counted prediction was written"
    );
    assert!(
        !std::path::Path::new(&journal).exists(),
        "the journal was used up"
    );
}

/// Malformed HTTP from anyone must not write a line to the log each: at the default level the
/// service logs none of them (a flood of 30,000 once wrote 3,481 error lines).
#[tokio::test]
async fn malformed_http_requests_do_not_flood_the_log() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let db = crate::helpers::TestDatabase::fresh().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollbooth"));
    command.env_remove("RUST_LOG");
    let server = start_command(command, &db.url, &[]);
    let address = server.address.trim_start_matches("http://").to_owned();
    for n in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let garbage: &[u8] = match n % 3 {
            0 => b"GARBAGE\r\n\r\n",
            1 => b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            _ => b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        };
        stream.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    server.signal("-TERM");
    let (_, output) = server.wait();

    let errors = output.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors, 0, "{output}");
}
