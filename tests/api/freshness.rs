//! Changes made by another process (the CLI) reach the running server's hot path.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{OWNER, TestApp, spawn_app};

/// Runs the real `tollbooth` binary against the app's database.
pub fn cli(app_db_url: &str, args: &[&str]) -> String {
    cli_with(app_db_url, args, &[])
}

/// Runs the real `tollbooth` binary with more environment variables.
pub fn cli_with(app_db_url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .args(args)
        .env("DATABASE_URL", app_db_url)
        .env("FXN_OWNER", OWNER)
        .envs(env.iter().copied())
        .output()
        .expect("Failed to run tollbooth");
    assert!(
        output.status.success(),
        "tollbooth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("CLI output is UTF-8")
}

/// Polls until the answer for `key` has `status`; returns how long that took.
async fn time_until_status(app: &TestApp, key: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        if app.authorize("@acme/sdxl", key).await.status().as_u16() == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never reached {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_key_issued_and_revoked_by_the_cli_takes_effect_within_one_second() {
    let app = spawn_app().await;

    let out = cli(
        &app.db.url,
        &[
            "keys",
            "issue",
            "--email",
            "cli@example.com",
            "--grant",
            "@acme/*",
        ],
    );
    let key = out.lines().last().unwrap().trim().to_owned();
    assert!(
        key.starts_with("tb_"),
        "the key is alone on the last line: {out}"
    );
    let issued_after = time_until_status(&app, &key, 200).await;

    let prefix = &key[..11];
    cli(&app.db.url, &["keys", "revoke", prefix]);
    let revoked_after = time_until_status(&app, &key, 400).await;

    assert!(
        issued_after < Duration::from_secs(1),
        "issue took {issued_after:?}"
    );
    assert!(
        revoked_after < Duration::from_secs(1),
        "revoke took {revoked_after:?}"
    );
}

#[tokio::test]
async fn keys_list_shows_prefixes_and_never_the_key() {
    let app = spawn_app().await;
    let out = cli(
        &app.db.url,
        &[
            "keys",
            "issue",
            "--email",
            "l@example.com",
            "--name",
            "laptop",
        ],
    );
    let key = out.lines().last().unwrap().trim().to_owned();

    let listing = cli(&app.db.url, &["keys", "list"]);
    let customers = cli(&app.db.url, &["customers", "list"]);

    assert!(listing.contains(&key[..11]), "{listing}");
    assert!(listing.contains("laptop"), "{listing}");
    assert!(!listing.contains(&key), "the listing must not show the key");
    assert!(customers.contains("l@example.com"), "{customers}");
}

#[tokio::test]
async fn keys_revoke_takes_the_whole_key_too() {
    let app = spawn_app().await;
    let out = cli(
        &app.db.url,
        &[
            "keys",
            "issue",
            "--email",
            "w@example.com",
            "--grant",
            "@acme/*",
        ],
    );
    let key = out.lines().last().unwrap().trim().to_owned();
    time_until_status(&app, &key, 200).await;

    let revoked = cli(&app.db.url, &["keys", "revoke", &key]);
    let refused_after = time_until_status(&app, &key, 400).await;

    assert!(revoked.starts_with("Revoked key_"), "{revoked}");
    assert!(!revoked.contains(&key), "the key is not echoed: {revoked}");
    assert!(refused_after < Duration::from_secs(1));
}
