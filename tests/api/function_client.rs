//! Function's real Python clients (`fxn` from PyPI, and its successor `muna`) against tollbooth, through a small stand-in
//! for Function's prediction-creation call (`tests/e2e/function_standin.py`), the one part of
//! Function that cannot run here: what a Python user sees for an allowed key, credits used up,
//! a revoked key, a mistyped key and no key. `.ci/run` installs `fxn` in `target/fxn-venv` and
//! runs this; `FXN_PYTHON` names a Python that has it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollbooth::store::Keys;

use crate::helpers::{Issue, spawn_app};

const TAG: &str = "@acme/sdxl";

fn python() -> String {
    std::env::var("FXN_PYTHON")
        .unwrap_or_else(|_| format!("{}/target/fxn-venv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

fn script(name: &str) -> String {
    format!("{}/tests/e2e/{name}", env!("CARGO_MANIFEST_DIR"))
}

struct StandIn {
    port: u16,
    child: Child,
}

impl StandIn {
    async fn start(authorize_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python())
            .arg(script("function_standin.py"))
            .arg(port.to_string())
            .arg(authorize_url)
            .stdout(Stdio::null())
            .spawn()
            .expect("the stand-in for Function's API starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(started.elapsed() < Duration::from_secs(20), "no stand-in");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, child }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The clients to try: `fxn`, and `muna` where it can run (muna 0.1.36 installs on Python 3.11
/// but does not import there: its pydantic models need Python 3.12's `TypedDict`).
fn clients() -> Vec<&'static str> {
    let modern = Command::new(python())
        .args(["-c", "import sys; print(sys.version_info >= (3, 12))"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "True");
    if modern {
        vec!["fxn", "muna"]
    } else {
        eprintln!("muna is not tried: it needs Python 3.12 or newer");
        vec!["fxn"]
    }
}

/// What the Python user sees for each case (a key, or `null` for none).
fn run_client(api_url: &str, cases: &Value) -> Value {
    run_with(api_url, cases, "fxn")
}

/// The same with `client`: `fxn`, or its successor `muna`.
fn run_with(api_url: &str, cases: &Value, client: &str) -> Value {
    let output = Command::new(python())
        .arg(script("fxn_client.py"))
        .arg(api_url)
        .arg(TAG)
        .arg(cases.to_string())
        .arg(client)
        .env_remove("FXN_ACCESS_KEY")
        .env_remove("MUNA_ACCESS_KEY")
        .output()
        .expect("Python runs");
    assert!(
        output.status.success(),
        "the client script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

#[tokio::test]
#[ignore = "needs fxn from PyPI; .ci/run installs it and runs this"]
async fn a_python_user_of_function_sees_tollbooths_answers_word_for_word() {
    let app = spawn_app().await;
    let allowed = app
        .issue(Issue {
            email: Some("allowed@example.com"),
            ..Issue::default()
        })
        .await;
    let spent = app
        .issue(Issue {
            email: Some("spent@example.com"),
            credits: Some(1),
            ..Issue::default()
        })
        .await;
    let revoked = app
        .issue(Issue {
            email: Some("revoked@example.com"),
            ..Issue::default()
        })
        .await;
    app.store
        .revoke_key(&revoked.key_id, tollbooth::clock::unix_now())
        .await
        .unwrap();
    app.refresh().await;
    // One character changed: the checksum catches it.
    let mut mistyped = allowed.key.clone().into_bytes();
    let last = mistyped.len() - 3;
    mistyped[last] = if mistyped[last] == b'a' { b'b' } else { b'a' };
    let mistyped = String::from_utf8(mistyped).unwrap();

    let standin = StandIn::start(&app.authorize_url()).await;
    let api_url = format!("http://127.0.0.1:{}/v1", standin.port);
    let cases = |prefix: &str| {
        json!({
            // Run in the order of their names (a JSON object's keys are sorted).
            "allowed": allowed.key,
            "credit_1_used": if prefix == "fxn" { &spent.key } else { &allowed.key },
            "credit_2_refused": spent.key,
            "revoked": revoked.key,
            "mistyped": mistyped,
            "none": null,
        })
    };
    for client in clients() {
        let seen = run_with(&api_url, &cases(client), client);
        // fxn prefixes its error's name; muna shows the message alone.
        let prefix = if client == "fxn" {
            "FunctionAPIError: "
        } else {
            ""
        };
        let says = |case: &str, expected: &str| {
            let text = seen[case].as_str().unwrap_or_default();
            assert!(
                text.starts_with(prefix) && text.contains(expected),
                "{client} {case}: {text:?} should carry {expected:?}"
            );
            assert!(
                text.ends_with("(Status Code: 400)"),
                "{client} {case}: {text}"
            );
        };
        assert_eq!(seen["allowed"], "ok", "{client}");
        assert_eq!(seen["credit_1_used"], "ok", "{client}");
        says(
            "credit_2_refused",
            "You have used all 1 of your prediction credits",
        );
        says("revoked", "This access key is not valid");
        says("mistyped", "The access key has a typo");
        // Python's None goes out as "Bearer None": tollbooth says no key was sent.
        says("none", "No access key was sent");
    }
}

/// Predictions with inputs run on the user's machine: the client creates a prediction through
/// Function's API (and so through the authorizationUrl) to load the predictor, and keeps the
/// loaded predictor for the process. Loading needs Function's real servers (the predictor's
/// signed configuration and resources), which cannot be reached here, so what this shows is
/// that every attempt to load goes through the authorizationUrl, and that a refusal stops it.
#[tokio::test]
#[ignore = "needs fxn from PyPI; .ci/run installs it and runs this"]
async fn loading_a_predictor_to_run_locally_asks_the_authorization_url_first() {
    let app = spawn_app().await;
    let allowed = app.issue(Issue::default()).await;
    let standin = StandIn::start(&app.authorize_url()).await;
    let api_url = format!("http://127.0.0.1:{}/v1", standin.port);

    let seen = run_client(&api_url, &json!({ "local": allowed.key }));
    let local = &seen["local"];
    println!("loading locally: {local}");
    let outcomes = local["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(
        local["authorizations"].as_u64().unwrap() >= 1,
        "loading the predictor authorized first: {local}"
    );
    let refused = run_client(&api_url, &json!({ "local": "tb_not_a_key" }));
    let first = refused["local"]["outcomes"][0].as_str().unwrap();
    assert!(first.contains("FunctionAPIError"), "{first}");

    // With Function's native runtime stood in for (it needs Function's servers), the client's
    // own code keeps the loaded predictor: five local predictions, one authorization. This is
    // what docs/function.md tells owners; if a new client changes it, this fails.
    let cached = run_client(&api_url, &json!({ "local_cached": allowed.key }));
    let cached = &cached["local_cached"];
    assert_eq!(
        cached["outcomes"],
        json!(["ok", "ok", "ok", "ok", "ok"]),
        "{cached}"
    );
    assert_eq!(cached["authorizations"], 1, "{cached}");
}
