//! The real binary: signals, crash bounds and what it writes to its logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::freshness::cli;
use crate::helpers::{OWNER, TOKEN, TestDatabase};

pub struct Server {
    child: Child,
    pub address: String,
    output: Arc<Mutex<String>>,
}

/// Starts `tollbooth` (serve) on a free port and waits for its start-up summary.
pub fn start_server(db_url: &str, extra: &[(&str, &str)]) -> Server {
    start_command(Command::new(env!("CARGO_BIN_EXE_tollbooth")), db_url, extra)
}

/// Serves with `command`, which runs the binary (perhaps through a wrapper), on a free port.
pub fn start_command(mut command: Command, db_url: &str, extra: &[(&str, &str)]) -> Server {
    command
        .env("DATABASE_URL", db_url)
        .env("USAGE_JOURNAL", crate::helpers::journal_path())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("FXN_OWNER", OWNER)
        .env("AUTHORIZE_TOKEN", TOKEN)
        .env("WORKERS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("Failed to start tollbooth");
    let output = Arc::new(Mutex::new(String::new()));
    let (port_tx, port_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                let _ = port_tx.send(rest.trim().to_owned());
            }
            out.lock().unwrap().push_str(&line);
            out.lock().unwrap().push('\n');
        }
    });
    let err = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            err.lock().unwrap().push_str(&line);
            err.lock().unwrap().push('\n');
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("tollbooth did not start: {}", output.lock().unwrap()));
    Server {
        child,
        address: format!("http://127.0.0.1:{port}"),
        output,
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn authorize(&self, client: &reqwest::Client, key: &str) -> u16 {
        client
            .post(format!("{}/authorize/{TOKEN}", self.address))
            .json(&serde_json::json!({"tag": "@acme/sdxl", "accessKey": key}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns whether it exited cleanly, and its output.
    pub fn wait(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let output = self.output.lock().unwrap().clone();
        (status.success(), output)
    }
}

pub async fn issue(db_url: &str, args: &[&str]) -> String {
    let mut all = vec!["keys", "issue", "--email", "p@example.com"];
    all.extend_from_slice(args);
    let out = cli(db_url, &all).await;
    out.lines().last().unwrap().trim().to_owned()
}

pub async fn count_allowed(
    server: &Server,
    client: &reqwest::Client,
    key: &str,
    n: usize,
) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        if server.authorize(client, key).await == 200 {
            allowed += 1;
        }
    }
    allowed
}

#[tokio::test]
async fn sigterm_flushes_counted_use_before_exiting() {
    let db = TestDatabase::fresh().await;
    let key = issue(&db.url, &["--credits", "5"]).await;
    let client = reqwest::Client::new();
    // No periodic flush during the test: only the shutdown flush can save the counts.
    let server = start_server(&db.url, &[("USAGE_FLUSH_INTERVAL", "1h")]);

    assert_eq!(count_allowed(&server, &client, &key, 3).await, 3);
    server.signal("-TERM");
    let (clean, output) = server.wait();
    assert!(clean, "tollbooth did not exit cleanly on SIGTERM: {output}");

    let server = start_server(&db.url, &[]);
    assert_eq!(
        count_allowed(&server, &client, &key, 5).await,
        2,
        "3 of 5 credits were used"
    );
    server.signal("-TERM");
    server.wait();
}

#[tokio::test]
async fn a_crash_loses_at_most_one_flush_interval_of_counts() {
    let db = TestDatabase::fresh().await;
    let key = issue(&db.url, &["--credits", "10"]).await;
    let client = reqwest::Client::new();
    let server = start_server(&db.url, &[("USAGE_FLUSH_INTERVAL", "200ms")]);

    assert_eq!(count_allowed(&server, &client, &key, 4).await, 4);
    // More than one interval later, the counts are written even if the process dies at once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal("-KILL");
    server.wait();

    let server = start_server(&db.url, &[]);
    assert_eq!(
        count_allowed(&server, &client, &key, 10).await,
        6,
        "4 of 10 credits were kept"
    );
    server.signal("-TERM");
    server.wait();
}

#[tokio::test]
async fn no_key_token_or_secret_appears_in_the_logs() {
    let db = TestDatabase::fresh().await;
    let key = issue(&db.url, &["--credits", "1"]).await;
    let secrets = [
        ("STRIPE_SECRET_KEY", "sk_test_logleak0123456789"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_logleak0123456789"),
        ("ADMIN_TOKEN", "admin-logleak-0123456789"),
        ("SESSION_SECRET", "session-logleak-0123456789"),
    ];
    let mut env = vec![("LOG_FORMAT", "json"), ("RUST_LOG", "debug")];
    env.extend_from_slice(&secrets);
    let server = start_server(&db.url, &env);
    let client = reqwest::Client::new();

    assert_eq!(server.authorize(&client, &key).await, 200);
    assert_eq!(server.authorize(&client, &key).await, 400);
    let wrong = format!("{}/authorize/{}-wrong", server.address, TOKEN);
    client.post(&wrong).body("x").send().await.unwrap();
    client
        .post(format!("{}/authorize/{TOKEN}", server.address))
        .header("content-type", "application/json")
        .body(format!("{{\"tag\": 1, \"accessKey\": \"{key}\"}}"))
        .send()
        .await
        .unwrap();
    server.signal("-TERM");
    let (_, output) = server.wait();

    assert!(
        output.contains("/authorize/{token}"),
        "the requests were logged (by route pattern): {output}"
    );
    assert!(
        output.contains("credits_used"),
        "the denial reason was logged: {output}"
    );
    let mut forbidden = vec![key.as_str(), TOKEN];
    forbidden.extend(secrets.iter().map(|(_, v)| *v));
    for secret in forbidden {
        assert!(
            !output.contains(secret),
            "{secret} appeared in the logs:\n{output}"
        );
    }
}
