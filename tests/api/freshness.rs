//! Changes made by another process (the CLI) reach the running server's hot path.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::helpers::{OWNER, TestApp, spawn_app};

/// Runs the real `tollbooth` binary against the app's database.
pub async fn cli(app_db_url: &str, args: &[&str]) -> String {
    cli_with(app_db_url, args, &[]).await
}

/// Runs the real `tollbooth` binary with more environment variables.
pub async fn cli_with(app_db_url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run_cli(app_db_url, args, env).await;
    assert!(
        output.status.success(),
        "tollbooth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("CLI output is UTF-8")
}

/// Runs the real `tollbooth` binary on tokio's blocking pool. The app under test runs on the
/// test's runtime, often its only thread: waiting for the CLI there would stop the app midway
/// through a write (a webhook's, say) while the CLI waits for that write's lock, for ever on
/// PostgreSQL.
async fn run_cli(app_db_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollbooth"));
    command
        .args(args)
        .env("DATABASE_URL", app_db_url)
        .env("FXN_OWNER", OWNER)
        .envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the CLI's thread panicked")
        .expect("Failed to run tollbooth")
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
    )
    .await;
    let key = out.lines().last().unwrap().trim().to_owned();
    assert!(
        key.starts_with("tb_"),
        "the key is alone on the last line: {out}"
    );
    let issued_after = time_until_status(&app, &key, 200).await;

    let prefix = &key[..11];
    cli(&app.db.url, &["keys", "revoke", prefix]).await;
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
    )
    .await;
    let key = out.lines().last().unwrap().trim().to_owned();

    let listing = cli(&app.db.url, &["keys", "list"]).await;
    let customers = cli(&app.db.url, &["customers", "list"]).await;

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
    )
    .await;
    let key = out.lines().last().unwrap().trim().to_owned();
    time_until_status(&app, &key, 200).await;

    let revoked = cli(&app.db.url, &["keys", "revoke", &key]).await;
    let refused_after = time_until_status(&app, &key, 400).await;

    assert!(revoked.starts_with("Revoked key_"), "{revoked}");
    assert!(!revoked.contains(&key), "the key is not echoed: {revoked}");
    assert!(refused_after < Duration::from_secs(1));
}

/// Runs the real `tollbooth` binary expecting it to fail; its exit code and standard error.
pub async fn cli_refused(app_db_url: &str, args: &[&str]) -> (i32, String) {
    let output = run_cli(app_db_url, args, &[]).await;
    assert!(!output.status.success(), "tollbooth {args:?} succeeded");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn grants_are_given_listed_and_ended_at_the_command_line_and_take_effect_within_a_second() {
    let app = spawn_app().await;
    let issued = app
        .issue(crate::helpers::Issue {
            no_grant: true,
            ..crate::helpers::Issue::default()
        })
        .await;
    time_until_status(&app, &issued.key, 400).await;
    let given = cli(
        &app.db.url,
        &[
            "grants",
            "give",
            "--customer",
            &issued.customer_id,
            "--grant",
            "@acme/*",
            "--credits",
            "50",
            "--note",
            "pilot",
        ],
    )
    .await;
    assert!(
        given.contains("all of acme's predictors, 50 credits (shared by the customer's keys)"),
        "{given}"
    );
    assert!(time_until_status(&app, &issued.key, 200).await < Duration::from_secs(1));
    let listed = cli(
        &app.db.url,
        &["grants", "list", "--customer", &issued.customer_id],
    )
    .await;
    let id = listed.split_whitespace().next().unwrap().to_owned();
    assert!(
        id.starts_with("gr_") && listed.contains("(pilot)") && listed.contains("active"),
        "{listed}"
    );
    let ended = cli(&app.db.url, &["grants", "end", &id]).await;
    assert!(ended.starts_with(&format!("Ended {id}")), "{ended}");
    assert!(time_until_status(&app, &issued.key, 400).await < Duration::from_secs(1));
    assert!(
        cli(
            &app.db.url,
            &["grants", "list", "--customer", &issued.customer_id]
        )
        .await
        .contains("ended")
    );
}

#[tokio::test]
async fn meaningless_grants_are_refused_at_the_command_line_with_what_to_change() {
    let app = spawn_app().await;
    let past = tollbooth::domain::calendar::date(tollbooth::clock::unix_now() - 86_400);
    for (args, says) in [
        (
            vec![
                "keys",
                "issue",
                "--email",
                "z@example.com",
                "--credits",
                "0",
            ],
            "--credits must be at least 1",
        ),
        (
            vec!["keys", "issue", "--email", "z@example.com", "--quota", "0"],
            "--quota must be at least 1",
        ),
        (
            vec![
                "keys",
                "issue",
                "--email",
                "z@example.com",
                "--expires",
                past.as_str(),
            ],
            "has passed",
        ),
        (
            vec![
                "keys",
                "issue",
                "--email",
                "z@example.com",
                "--grant",
                "@someone-else/*",
            ],
            "another owner",
        ),
        (
            vec![
                "grants",
                "give",
                "--customer",
                "loc_nobody",
                "--credits",
                "5",
            ],
            "no customer loc_nobody",
        ),
        (
            vec!["grants", "end", "gr_nothing"],
            "no grant has the id gr_nothing",
        ),
    ] {
        let (code, stderr) = cli_refused(&app.db.url, &args).await;
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let listed = cli(&app.db.url, &["keys", "list"]).await;
    assert!(
        listed.starts_with("No keys"),
        "nothing was issued: {listed}"
    );
}
