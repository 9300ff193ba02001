//! A customer in headless Chromium: buys a plan, gets the key once, uses it, manages keys.
//! Needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them and runs this with
//! `--ignored`. Screenshots of every page go to `target/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::email::{Smtp, link_in};
use crate::helpers::{Issue, assert_allowed};
use crate::pages::{shop, shop_with};

struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
    prefix: &'static str,
}

impl Browser {
    async fn start(prefix: &'static str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver must be installed (Debian: chromium-driver)");
        let profile = tempfile::tempdir().unwrap().keep();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--disable-dev-shm-usage", "--window-size=1100,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities.as_object().unwrap().clone());
        let url = format!("http://127.0.0.1:{port}");
        let mut attempts = 0;
        let client = loop {
            match builder.connect(&url).await {
                Ok(client) => break client,
                Err(e) if attempts < 100 => {
                    attempts += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("could not start a Chromium session: {e}"),
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            driver,
            shots,
            prefix,
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{}-{name}.png", self.prefix)), png).unwrap();
    }

    /// Waits (at most 10 s) for an element to appear.
    async fn find(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(locator)
            .await
        {
            Ok(element) => element,
            Err(e) => {
                self.shot("failed").await;
                panic!("{locator:?} did not appear: {e}\n{}", self.source().await)
            }
        }
    }

    /// Clicks what submits a form or follows a link, and waits (at most 10 s) until the page
    /// it was on is gone, so what is read next is from the page that answered.
    async fn click(&self, css: &str) {
        self.submit(Locator::Css(css)).await;
    }

    async fn submit(&self, locator: Locator<'_>) {
        let before = self.client.find(Locator::Css("html")).await.unwrap();
        self.find(locator).await.click().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // The old document's root goes stale when the new page replaces it.
        while before.tag_name().await.is_ok() {
            if std::time::Instant::now() > deadline {
                self.shot("failed").await;
                panic!("clicking {locator:?} did not lead to another page");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(Locator::Css(css)).await.text().await.unwrap()
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
    }
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver; .ci/run installs them and runs this"]
async fn a_customer_buys_gets_the_key_once_uses_it_and_manages_keys_in_a_browser() {
    let shop = shop("Pro").await;
    let engine = if std::env::var("TEST_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    };
    let browser = Browser::start(engine).await;
    let b = &browser;

    // The plans page, also at phone width.
    b.client
        .goto(&format!("{}/", shop.app.address))
        .await
        .unwrap();
    assert!(b.text("h1").await.contains("Plans"));
    b.shot("01-plans").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.shot("01-plans-phone").await;
    b.client.set_window_size(1100, 900).await.unwrap();

    // Buy: off to (fake) Stripe Checkout, pay, back on the welcome page with the key.
    b.click("form[action='/checkout'] button").await;
    b.find(Locator::Id("pay")).await;
    b.shot("02-checkout").await;
    b.click("#pay").await;
    let key = b.text("#new-key").await;
    assert!(key.starts_with("tb_"), "{key}");
    assert!(b.source().await.contains("Function(access_key="));
    b.shot("03-welcome").await;
    assert_allowed(&shop.app, "@acme/sdxl", &key).await;

    // A reload never shows the key again.
    b.client.refresh().await.unwrap();
    let again = b.source().await;
    assert!(!again.contains(&key) && again.contains("already been shown"));
    b.shot("04-welcome-reloaded").await;

    // Sign in to the account with the key.
    b.client
        .goto(&format!("{}/account", shop.app.address))
        .await
        .unwrap();
    b.shot("05-sign-in").await;
    b.find(Locator::Id("key"))
        .await
        .send_keys(&key)
        .await
        .unwrap();
    b.click("form[action='/account/sign-in'] button").await;
    assert_eq!(b.text("h1").await, "Your account");
    assert!(b.source().await.contains("Renews"));
    b.shot("06-account").await;

    // Create a named key: shown once.
    b.find(Locator::Id("name"))
        .await
        .send_keys("laptop")
        .await
        .unwrap();
    b.click("form[action='/account/keys'] button").await;
    let laptop_key = b.text("#new-key").await;
    assert!(laptop_key.starts_with("tb_") && laptop_key != key);
    assert_allowed(&shop.app, "@acme/sdxl", &laptop_key).await;
    b.shot("07-new-key").await;

    // Revoke it.
    b.submit(Locator::XPath(
        "//tr[td[normalize-space()='laptop']]//button[contains(@class, 'danger')]",
    ))
    .await;
    b.find(Locator::Css("form[action='/account/keys']")).await;
    assert!(
        !b.source().await.contains(">laptop<"),
        "the revoked key is gone from the list"
    );
    let (status, _) = shop.app.authorize_json("@acme/sdxl", &laptop_key).await;
    assert_eq!(status, 400);
    b.shot("08-revoked").await;

    // Give the key a limit of its own, then use it once: the page counts it against the limit.
    b.find(Locator::Css("form[action$='/cap'] input[name='cap']"))
        .await
        .send_keys("100/day")
        .await
        .unwrap();
    b.click("form[action$='/cap'] button").await;
    b.find(Locator::Css("form[action='/account/keys']")).await;
    assert!(b.source().await.contains("0 of 100 today"));
    assert_allowed(&shop.app, "@acme/sdxl", &key).await;
    b.client.refresh().await.unwrap();
    assert!(b.source().await.contains("1 of 100 today"));
    b.client
        .execute(
            "document.querySelector('table.keys').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    both_widths(b, "08b-key-limit").await;

    // Roll it, the old key working for another hour: the new key is shown once.
    b.find(Locator::Css("form[action$='/roll'] select"))
        .await
        .select_by_value("1h")
        .await
        .unwrap();
    b.click("form[action$='/roll'] button").await;
    let rolled_key = b.text("#new-key").await;
    assert!(rolled_key.starts_with("tb_") && rolled_key != key);
    assert!(b.source().await.contains("the old key keeps working until"));
    assert_allowed(&shop.app, "@acme/sdxl", &rolled_key).await;
    assert_allowed(&shop.app, "@acme/sdxl", &key).await;
    both_widths(b, "08c-rolled").await;

    // Read the chart once the use is written (the flusher writes it each minute; here, now).
    shop.app
        .gate
        .flush(shop.app.store.as_ref(), tollbooth::clock::unix_now(), true)
        .await
        .unwrap();
    b.client
        .goto(&format!("{}/account", shop.app.address))
        .await
        .unwrap();
    let chart = b.find(Locator::Css(".chart svg")).await;
    let bars = chart.find_all(Locator::Css("rect title")).await.unwrap();
    assert!(!bars.is_empty(), "the chart draws the day's use");
    let source = b.source().await;
    assert!(source.contains("predictions in the last 30 days") && source.contains("@acme/sdxl"));
    b.client
        .execute("document.querySelector('.chart').scrollIntoView()", vec![])
        .await
        .unwrap();
    both_widths(b, "08d-chart").await;

    // Sign out.
    b.click("form[action='/account/sign-out'] button").await;
    b.find(Locator::Id("key")).await;
    b.shot("09-signed-out").await;

    browser.stop().await;
}

/// Shots of a page at desktop width, then at phone width.
async fn both_widths(b: &Browser, name: &str) {
    b.shot(name).await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.shot(&format!("{name}-phone")).await;
    b.client.set_window_size(1100, 900).await.unwrap();
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver; .ci/run installs them and runs this"]
async fn the_owner_signs_in_reads_the_overview_finds_a_customer_and_acts_in_a_browser() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let shop = shop_with("Pro", &[("ADMIN_TOKEN", &format!("owner:{SECRET}"))]).await;
    let app = &shop.app;
    // A paying customer who predicts, a hand-made one, refusals, and 30 days of history.
    let welcome = shop.buy().await;
    let (_, page) = shop.get(&welcome, None).await;
    let paid_key = crate::pages::revealed_key(&page).expect("the key on the welcome page");
    for tag in ["@acme/sdxl", "@acme/sdxl", "@acme/llama"] {
        assert_allowed(app, tag, &paid_key).await;
    }
    let unknown = "tb_0000000000000000000000000000000000";
    let _ = app.authorize_json("@acme/sdxl", unknown).await;
    let hand = app
        .issue(crate::helpers::Issue {
            email: Some("hand@example.com"),
            ..crate::helpers::Issue::default()
        })
        .await;
    assert_allowed(app, "@acme/whisper", &hand.key).await;
    app.gate
        .flush(app.store.as_ref(), tollbooth::clock::unix_now(), true)
        .await
        .unwrap();
    let today = tollbooth::domain::calendar::day_start(tollbooth::clock::unix_now());
    for day in 1..30_i64 {
        let hour = today - day * 86_400 + 12 * 3_600;
        for (tag, count) in [
            ("@acme/sdxl", 40 + day * 3),
            ("@acme/llama", 15 + day % 7 * 4),
        ] {
            app.store
                .0
                .execute(
                    tollbooth::store::sql::sql(
                        "INSERT INTO usage_hourly (hour, tag, key_id, customer_id, count) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(hour)
                    .bind(tag)
                    .bind(hand.key_id.as_str())
                    .bind(hand.customer_id.as_str())
                    .bind(count),
                )
                .await
                .unwrap();
        }
        app.store
            .0
            .execute(
                tollbooth::store::sql::sql(
                    "INSERT INTO refusals_hourly (hour, reason, count) VALUES ($1, $2, $3)",
                )
                .bind(hour)
                .bind(if day % 3 == 0 {
                    "quota_used"
                } else {
                    "unknown_key"
                })
                .bind(day % 5 + 1),
            )
            .await
            .unwrap();
    }
    let now = tollbooth::clock::unix_now();
    use tollbooth::store::Inbox as _;
    app.store
        .insert_event(&tollbooth::store::NewEvent {
            id: "evt_stuck".into(),
            event_type: "customer.subscription.updated".into(),
            created: now,
            payload: "{}".into(),
            received_at: now,
        })
        .await
        .unwrap();
    app.store
        .event_failed(
            "evt_stuck",
            "no answer from Stripe within 10 s",
            now + 3_600,
        )
        .await
        .unwrap();

    let engine = if std::env::var("TEST_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    };
    let browser = Browser::start(engine).await;
    let b = &browser;

    // Sign in with the admin token.
    b.client
        .goto(&format!("{}/admin", app.address))
        .await
        .unwrap();
    both_widths(b, "admin-01-sign-in").await;
    b.find(Locator::Id("token"))
        .await
        .send_keys(SECRET)
        .await
        .unwrap();
    b.click("form[action='/admin/sign-in'] button").await;

    // The overview: the chart, the figures, the refusals, the top customers.
    assert_eq!(b.text("h1").await, "Overview");
    let overview = b.source().await;
    assert!(
        overview.contains("<svg") && overview.contains("@acme/sdxl"),
        "the chart"
    );
    assert!(overview.contains("quota used"), "refusals by reason");
    assert!(overview.contains("hand@example.com"), "top customers");
    assert!(
        overview.contains("$"),
        "MRR from the paid subscription: {overview}"
    );
    both_widths(b, "admin-02-overview").await;

    // Find the hand-made customer.
    b.click("header nav a[href='/admin/customers']").await;
    b.find(Locator::Id("search"))
        .await
        .send_keys("hand@")
        .await
        .unwrap();
    b.click("form[role='search'] button").await;
    both_widths(b, "admin-03-customers").await;
    b.click(&format!("a[href='/admin/customers/{}']", hand.customer_id))
        .await;
    assert_eq!(b.text("h1").await, "hand@example.com");
    assert!(
        b.source().await.contains("<svg"),
        "the customer's use chart"
    );
    both_widths(b, "admin-04-customer").await;

    // Issue a key for them: shown once.
    b.find(Locator::Css("#issue summary"))
        .await
        .click()
        .await
        .unwrap();
    b.find(Locator::Css("#issue-key input[name='name']"))
        .await
        .send_keys("from the dashboard")
        .await
        .unwrap();
    b.click("#issue-key button[type='submit']").await;
    let new_key = b.text("#new-key").await;
    assert!(new_key.starts_with("tb_"), "{new_key}");
    assert_allowed(app, "@acme/sdxl", &new_key).await;
    both_widths(b, "admin-05-key-issued").await;

    // Revoke it.
    b.submit(Locator::XPath(
        "//tr[td[normalize-space()='from the dashboard']]//button[contains(@class, 'danger')]",
    ))
    .await;
    let (status, _) = app.authorize_json("@acme/sdxl", &new_key).await;
    assert_eq!(status, 400);
    assert!(b.source().await.contains("revoked"));
    both_widths(b, "admin-06-key-revoked").await;

    // Retry the failing event.
    b.click("header nav a[href='/admin/webhooks']").await;
    assert!(b.source().await.contains("evt_stuck"));
    both_widths(b, "admin-07-webhooks").await;
    b.click("form[action='/admin/events/evt_stuck/retry'] button")
        .await;
    b.find(Locator::Css("h1")).await;
    both_widths(b, "admin-08-retried").await;

    // The audit log: the key issued and revoked here, by the token's label.
    b.click("header nav a[href='/admin/audit']").await;
    let audit = b.source().await;
    assert!(
        audit.contains("admin:owner") && audit.contains("key.revoked"),
        "{audit}"
    );
    both_widths(b, "admin-09-audit").await;

    // Sign out.
    b.click("form[action='/admin/sign-out'] button").await;
    b.find(Locator::Id("token")).await;

    browser.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium, chromium-driver and aiosmtpd; .ci/run installs them and runs this"]
async fn a_customer_who_lost_every_key_signs_in_by_email_in_a_browser() {
    let smtp = Smtp::start().await;
    let settings = smtp.settings();
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let shop = shop_with("Pro", &extra).await;
    shop.app
        .issue(Issue {
            email: Some("lost@example.com"),
            ..Issue::default()
        })
        .await;
    let engine = if std::env::var("TEST_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    };
    let browser = Browser::start(engine).await;
    let b = &browser;

    b.client
        .goto(&format!("{}/account", shop.app.address))
        .await
        .unwrap();
    b.find(Locator::Id("email"))
        .await
        .send_keys("lost@example.com")
        .await
        .unwrap();
    both_widths(b, "10-email-sign-in").await;
    b.click("form[action='/account/email-link'] button").await;
    assert!(b.source().await.contains("a sign-in link is on its way"));
    both_widths(b, "11-email-link-sent").await;

    // Follow the link from the delivered email, then confirm.
    let link = link_in(&smtp.message(1).await).replace("localhost", "127.0.0.1");
    b.client.goto(&link).await.unwrap();
    both_widths(b, "12-email-link-opened").await;
    b.click("form[action='/account/email-sign-in'] button")
        .await;
    assert_eq!(b.text("h1").await, "Your account");
    assert!(b.source().await.contains("lost@example.com"));

    // Make a new key: shown once.
    b.find(Locator::Id("name"))
        .await
        .send_keys("recovered")
        .await
        .unwrap();
    b.click("form[action='/account/keys'] button").await;
    let key = b.text("#new-key").await;
    assert_allowed(&shop.app, "@acme/sdxl", &key).await;
    both_widths(b, "13-email-recovered-key").await;
    browser.stop().await;
}
