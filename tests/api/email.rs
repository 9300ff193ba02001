//! Sign-in by email against a real SMTP server (aiosmtpd from PyPI, which `.ci/run` installs in
//! `target/smtp-venv`): the link is delivered, read from the mailbox and followed; it works once;
//! the form says the same for unknown addresses and is limited per address. Run with
//! `cargo test --test api email -- --ignored`; `SMTP_PYTHON` names a Python with aiosmtpd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use tollbooth::store::sql::sql;

use crate::helpers::{Issue, TestApp, spawn_app_with};
use crate::pages::{csrf, revealed_key};

/// A real SMTP server on a free port, delivering into a maildir of its own.
pub struct Smtp {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Child,
}

impl Smtp {
    pub async fn start() -> Self {
        let python = std::env::var("SMTP_PYTHON").unwrap_or_else(|_| {
            format!("{}/target/smtp-venv/bin/python", env!("CARGO_MANIFEST_DIR"))
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} -m aiosmtpd could not start ({e}); see .ci/run"));
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not listen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            port,
            maildir,
            child,
        }
    }

    /// The service's settings for sending through this server.
    pub fn settings(&self) -> [(&'static str, String); 2] {
        [
            ("SMTP_URL", format!("smtp://127.0.0.1:{}", self.port)),
            ("EMAIL_FROM", "Acme <billing@acme.test>".to_owned()),
        ]
    }

    fn delivered(&self) -> Vec<PathBuf> {
        let new = self.maildir.path().join("mail").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Waits for the `n`th message to arrive and returns it, quoted-printable undone.
    pub async fn message(&self, n: usize) -> String {
        let started = Instant::now();
        loop {
            if let Some(path) = self.delivered().get(n - 1) {
                return unfold(path);
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no message {n} was delivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn count(&self) -> usize {
        self.delivered().len()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unfold(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        // Folded header lines.
        .replace("\r\n ", " ")
        .replace("\n ", " ")
}

/// The sign-in link in a delivered message.
pub fn link_in(message: &str) -> String {
    message
        .split_whitespace()
        .find(|word| word.starts_with("http://") && word.contains("/account/email-sign-in?"))
        .expect("the message holds a sign-in link")
        .to_owned()
}

/// The session cookie a sign-in answer sets.
fn session_cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The account page as the holder of `cookie` sees it.
async fn account_page(http: &reqwest::Client, app: &TestApp, cookie: &str) -> String {
    http.get(format!("{}/account", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn ask_link(app: &TestApp, email: &str) -> (u16, String) {
    let response = client()
        .post(format!("{}/account/email-link", app.address))
        .form(&[("email", email)])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
#[ignore = "needs aiosmtpd; .ci/run installs it and runs this"]
async fn a_customer_who_lost_every_key_signs_in_with_a_link_sent_by_email_once() {
    let smtp = Smtp::start().await;
    let settings = smtp.settings();
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&extra).await;
    let lost = app
        .issue(Issue {
            email: Some("lost@example.com"),
            ..Issue::default()
        })
        .await;
    let http = client();
    let signin = http
        .get(format!("{}/account", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(signin.contains("Email me a sign-in link"));

    // Known or not, the answer is the same page.
    let (status, known) = ask_link(&app, "Lost@Example.com").await;
    assert_eq!(status, 200);
    let (_, unknown) = ask_link(&app, "nobody@example.com").await;
    assert_eq!(known, unknown);
    assert!(known.contains("If an account uses that address"));

    let message = smtp.message(1).await;
    assert!(message.contains("To: lost@example.com"), "{message}");
    assert!(message.contains("Subject: Your sign-in link"));
    let link = link_in(&message);
    assert!(link.starts_with(&format!(
        "http://localhost:{}",
        app.address.rsplit(':').next().unwrap()
    )));
    let token = link
        .split("token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in {link:?} of {message}"))
        .to_owned();
    // The database keeps the token's hash only.
    let stored: Vec<(String,)> = app
        .store
        .fetch_all(sql("SELECT token_hash FROM sign_in_links"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, token);
    assert!(!stored[0].0.contains(&token));

    // Opening the link does not use it (mail scanners open links); the button does.
    let opened = http
        .get(link.replace("localhost", "127.0.0.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.text().await.unwrap().contains("Sign in</button>"));
    let confirm = |token: String| {
        http.post(format!("{}/account/email-sign-in", app.address))
            .form(&[("token", token)])
            .send()
    };
    let signed_in = confirm(token.clone()).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = session_cookie(&signed_in);
    let account = account_page(&http, &app, &cookie).await;
    assert!(account.contains("Your account") && account.contains("lost@example.com"));

    // Signed in without a key, the customer makes a new one.
    let made = http
        .post(format!("{}/account/keys", app.address))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf(&account).as_str()), ("name", "recovered")])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let new_key = revealed_key(&made.text().await.unwrap()).expect("a new key, shown once");
    assert_ne!(new_key, lost.key);
    crate::helpers::assert_allowed(&app, "@acme/sdxl", &new_key).await;

    // A link works once.
    let again = confirm(token).await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("expired or was used"));
    let made_up = confirm("x".repeat(32)).await.unwrap();
    assert_eq!(made_up.status(), 400);

    // Three links per address in 15 minutes; the fourth is refused and none is sent.
    assert_eq!(ask_link(&app, "lost@example.com").await.0, 200);
    assert_eq!(ask_link(&app, "lost@example.com").await.0, 200);
    let (status, page) = ask_link(&app, "lost@example.com").await;
    assert_eq!(status, 429, "{page}");
    smtp.message(3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 3, "the refused request sent nothing");
}

#[tokio::test]
#[ignore = "needs aiosmtpd; .ci/run installs it and runs this"]
async fn a_customer_is_emailed_once_when_their_use_reaches_the_threshold_they_set() {
    let smtp = Smtp::start().await;
    let settings = smtp.settings();
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&extra).await;
    let issued = app
        .issue(Issue {
            email: Some("heavy@example.com"),
            quota: Some((2, tollbooth::domain::CalendarPeriod::Day)),
            ..Issue::default()
        })
        .await;
    let http = client();
    let signed_in = http
        .post(format!("{}/account/sign-in", app.address))
        .form(&[("key", issued.key.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&signed_in);
    let account = account_page(&http, &app, &cookie).await;
    assert!(account.contains("Email me when I have used"));
    let set = http
        .post(format!("{}/account/alerts", app.address))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf(&account).as_str()), ("alert_at", "100")])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 303);

    crate::helpers::assert_allowed(&app, "@acme/sdxl", &issued.key).await;
    crate::helpers::assert_allowed(&app, "@acme/sdxl", &issued.key).await;
    let message = smtp.message(1).await;
    assert!(message.contains("To: heavy@example.com"), "{message}");
    assert!(
        message.contains("you have used all your predictions this period"),
        "{message}"
    );
    assert!(message.contains("You have used 2 of the 2 predictions"));
    // Refusals past the quota send nothing more.
    let (status, _) = app.authorize_json("@acme/sdxl", &issued.key).await;
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(smtp.count(), 1, "one email for the threshold");
}
