//! Moving a ledger: `tollbooth export` from SQLite, `tollbooth import` into a new database
//! (PostgreSQL when `TEST_DATABASE_URL` is set), and the service answers the same there.

use std::process::{Command, Stdio};

use tollbooth::clock::unix_now;

use tollbooth::store::Audit;

use crate::helpers::{Issue, TestDatabase, assert_allowed, assert_denied, test_settings};
use tollbooth::store::Transfer;

#[tokio::test]
async fn an_exported_sqlite_ledger_imports_into_a_new_database_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}", dir.path().join("old.db").display());
    let settings = test_settings(&source, &[]);
    let app = tollbooth::app::Application::build(settings).await.unwrap();
    let store = app.store();
    let gate = app.gate();
    drop(app);
    let issued = crate::helpers::issue_with(
        &store,
        Issue {
            credits: Some(3),
            ..Issue::default()
        },
    )
    .await;
    gate.reload(store.as_ref(), unix_now()).await.unwrap();
    // One credit spent and flushed before the move.
    gate.authorize("@acme/a", &issued.key, unix_now()).unwrap();
    gate.flush(store.as_ref(), unix_now(), true).await.unwrap();
    store.close().await;

    let export = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .arg("export")
        .env("DATABASE_URL", &source)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let target = TestDatabase::fresh().await;
    let mut import = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .args(["import", "-"])
        .env("DATABASE_URL", &target.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(import.stdin.as_mut().unwrap(), &export.stdout).unwrap();
    let imported = import.wait_with_output().unwrap();
    assert!(imported.status.success());
    assert!(String::from_utf8_lossy(&imported.stdout).starts_with("Imported"));

    let moved = crate::helpers::start_on(target).await;
    // The audit log moves with the ledger, and the import is a change of its own.
    let audit = moved.store.audit_log(None, 10).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["ledger.imported", "key.issued"]);
    assert_eq!(audit[0].actor, "cli");
    assert_eq!(audit[1].subject.as_deref(), Some(issued.key_id.as_str()));
    assert_allowed(&moved, "@acme/a", &issued.key).await;
    assert_allowed(&moved, "@acme/a", &issued.key).await;
    assert_denied(
        &moved,
        "@acme/a",
        &issued.key,
        "used all 3 of your prediction credits",
    )
    .await;
}

#[tokio::test]
async fn import_refuses_a_database_that_already_has_a_ledger() {
    let target = TestDatabase::fresh().await;
    let store = tollbooth::store::connect(&target.url).await.unwrap();
    store.migrate().await.unwrap();
    crate::helpers::issue_with(&store, Issue::default()).await;

    let error = store.import(&[]).await.unwrap_err();

    assert!(error.to_string().contains("not empty"), "{error}");
}

/// An export written before keys could be rolled or capped (its access_keys rows end at
/// revoked_at) imports into this version, the new columns empty.
#[tokio::test]
async fn an_export_from_an_earlier_version_imports_with_the_columns_added_since_empty() {
    let key_hash = "ab".repeat(32);
    let export = [
        r#"{"table":"customers","row":["loc_old","old@example.com",null,1700000000,null]}"#.to_owned(),
        format!(
            r#"{{"table":"access_keys","row":["key_old","loc_old","{key_hash}","tb_oldkey","laptop",1700000000,null]}}"#
        ),
    ]
    .join("\n");
    let target = TestDatabase::fresh().await;
    let mut import = Command::new(env!("CARGO_BIN_EXE_tollbooth"))
        .args(["import", "-"])
        .env("DATABASE_URL", &target.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(import.stdin.as_mut().unwrap(), export.as_bytes()).unwrap();
    let imported = import.wait_with_output().unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let moved = crate::helpers::start_on(target).await;
    use tollbooth::store::Keys as _;
    let keys = moved.store.list_keys(Some("loc_old")).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name.as_deref(), Some("laptop"));
    assert_eq!((keys[0].expires_at, keys[0].cap()), (None, None));
}
