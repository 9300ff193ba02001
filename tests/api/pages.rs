//! The customer pages over HTTP: buying, the once-only key, the account, and their defences.

use reqwest::redirect::Policy;
use tollbooth::clock::unix_now;
use tollbooth::stripe::objects;

use crate::fake_checkout::{FakeCheckout, PRICE, price, product};
use crate::helpers::{Issue, TestApp, assert_allowed, spawn_app_with};
use crate::stripe_fake::WEBHOOK_SECRET;
use tollbooth::store::{Keys, Mirror};

pub struct Shop {
    pub app: TestApp,
    pub fake: FakeCheckout,
    /// Does not follow redirects, so each step can be looked at.
    pub client: reqwest::Client,
}

/// The service selling one plan through the fake Stripe, its catalog already synced.
pub async fn shop(product_name: &str) -> Shop {
    shop_with(product_name, &[]).await
}

/// The shop with `extra` settings.
pub async fn shop_with(product_name: &str, extra: &[(&str, &str)]) -> Shop {
    let fake = FakeCheckout::start(product_name).await;
    let mut settings = vec![
        ("STRIPE_SECRET_KEY", "sk_test_shop"),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("STRIPE_API_BASE", fake.base.as_str()),
    ];
    settings.extend_from_slice(extra);
    let app = spawn_app_with(&settings).await;
    fake.deliver_webhooks_to(&app);
    let stamp = unix_now() * 1000;
    app.store
        .upsert_product(&objects::product(&product(product_name), stamp).unwrap())
        .await
        .unwrap();
    app.store
        .upsert_price(&objects::price(&price(), stamp).unwrap())
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Shop { app, fake, client }
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status().as_u16(), 303, "expected a redirect");
    response.headers()["location"].to_str().unwrap().to_owned()
}

impl Shop {
    /// Buys the plan as a browser would; returns the welcome URL Stripe sends it to.
    pub async fn buy(&self) -> String {
        let checkout = self
            .client
            .post(format!("{}/checkout", self.app.address))
            .form(&[("price", PRICE)])
            .send()
            .await
            .unwrap();
        let pay_url = location(&checkout);
        assert!(pay_url.starts_with(&self.fake.base), "{pay_url}");
        let paid = self.client.post(&pay_url).send().await.unwrap();
        location(&paid)
    }

    pub async fn get(&self, url: &str, cookie: Option<&str>) -> (u16, String) {
        let mut request = self.client.get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.app.address))
            .form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// Signs in with `key`; returns the session cookie.
    pub async fn sign_in(&self, key: &str) -> String {
        let response = self
            .post_form("/account/sign-in", None, &[("key", key)])
            .await;
        assert_eq!(location(&response), "/account");
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }
}

/// The key a page reveals, if it reveals one.
pub fn revealed_key(html: &str) -> Option<String> {
    let start = html.find(r#"<code id="new-key">"#)? + r#"<code id="new-key">"#.len();
    let end = html[start..].find("</code>")? + start;
    Some(html[start..end].to_owned())
}

pub fn csrf(html: &str) -> String {
    let start = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    html[start..start + 64].to_owned()
}

#[tokio::test]
async fn the_plans_page_lists_the_catalog_with_prices_and_what_each_unlocks() {
    let shop = shop("Pro").await;

    let (status, html) = shop.get(&format!("{}/", shop.app.address), None).await;

    assert_eq!(status, 200);
    for expected in [
        "Pro",
        "$20.00 / month",
        "1,000 predictions per month",
        "Predictors: @acme/*",
        "Subscribe",
    ] {
        assert!(
            html.contains(expected),
            "{expected} missing from the plans page"
        );
    }
}

#[tokio::test]
async fn buying_reveals_one_key_once_and_a_reload_never_shows_or_issues_another() {
    let shop = shop("Pro").await;

    let welcome = shop.buy().await;
    let (status, first) = shop.get(&welcome, None).await;
    let key = revealed_key(&first).expect("the first visit shows the key");
    assert_eq!(status, 200);
    assert!(
        first.contains("Function(access_key=") && first.contains("accessKey:"),
        "snippets shown"
    );
    assert_allowed(&shop.app, "@acme/sdxl", &key).await;

    let (_, second) = shop.get(&welcome, None).await;

    assert!(
        revealed_key(&second).is_none(),
        "a reload must not show a key"
    );
    assert!(second.contains("already been shown"), "{second}");
    let customer = shop.app.store.list_customers().await.unwrap();
    let keys = shop
        .app
        .store
        .list_keys(Some(&customer[0].id))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "one purchase, one key");
}

#[tokio::test]
async fn the_key_is_still_revealed_once_when_the_webhook_fulfils_first() {
    let shop = shop("Pro").await;
    let welcome = shop.buy().await;
    let session_id = welcome.rsplit('=').next().unwrap().to_owned();
    let start = std::time::Instant::now();
    while shop
        .app
        .store
        .stripe_event(&format!("evt_{session_id}"))
        .await
        .unwrap()
        .and_then(|e| e.processed_at)
        .is_none()
    {
        assert!(
            start.elapsed().as_secs() < 5,
            "the webhook was not processed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    let (_, first) = shop.get(&welcome, None).await;
    let (_, second) = shop.get(&welcome, None).await;

    assert!(revealed_key(&first).is_some());
    assert!(revealed_key(&second).is_none());
}

#[tokio::test]
async fn unknown_and_unpaid_sessions_get_a_page_that_says_so() {
    let shop = shop("Pro").await;
    let unpaid = shop.fake.open_session();

    let (unknown_status, unknown) = shop
        .get(
            &format!("{}/welcome?session_id=cs_test_nope", shop.app.address),
            None,
        )
        .await;
    let (_, open) = shop
        .get(
            &format!("{}/welcome?session_id={unpaid}", shop.app.address),
            None,
        )
        .await;
    let (missing_status, _) = shop
        .get(&format!("{}/welcome", shop.app.address), None)
        .await;

    assert_eq!(unknown_status, 400);
    assert!(unknown.contains("payment session is unknown"), "{unknown}");
    assert!(open.contains("has not been paid yet"), "{open}");
    assert!(revealed_key(&open).is_none());
    assert_eq!(missing_status, 400);
}

#[tokio::test]
async fn names_render_as_text_never_as_markup() {
    let shop = shop("<script>alert(1)</script>").await;
    let issued = shop
        .app
        .issue(Issue {
            name: Some(r#""><img src=x onerror=alert(1)>"#),
            ..Issue::default()
        })
        .await;
    let cookie = shop.sign_in(&issued.key).await;

    let (_, plans) = shop.get(&format!("{}/", shop.app.address), None).await;
    let (_, account) = shop
        .get(&format!("{}/account", shop.app.address), Some(&cookie))
        .await;

    assert!(
        plans.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{plans}"
    );
    assert!(!plans.contains("<script>alert(1)"));
    assert!(
        account.contains("&#34;&#62;&#60;img src=x onerror=alert(1)&#62;"),
        "{account}"
    );
    assert!(!account.contains("<img src=x"));
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let shop = shop("Pro").await;
    for path in ["/", "/account", "/no-such-page"] {
        let response = shop
            .client
            .get(format!("{}{path}", shop.app.address))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
    }
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_site_are_refused() {
    let shop = shop("Pro").await;
    let issued = shop.app.issue(Issue::default()).await;
    let cookie = shop.sign_in(&issued.key).await;
    let (_, account) = shop
        .get(&format!("{}/account", shop.app.address), Some(&cookie))
        .await;
    let token = csrf(&account);

    let no_token = shop
        .post_form(
            "/account/keys",
            Some(&cookie),
            &[("name", "x"), ("csrf", "")],
        )
        .await;
    let cross_site = shop
        .client
        .post(format!("{}/account/keys", shop.app.address))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("name", "x"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    let good = shop
        .post_form(
            "/account/keys",
            Some(&cookie),
            &[("name", "x"), ("csrf", &token)],
        )
        .await;

    assert_eq!(no_token.status().as_u16(), 403);
    assert_eq!(cross_site.status().as_u16(), 403);
    assert_eq!(good.status().as_u16(), 200);
    assert!(revealed_key(&good.text().await.unwrap()).is_some());
}

#[tokio::test]
async fn revoking_the_last_active_key_asks_for_confirmation_first() {
    let shop = shop("Pro").await;
    let issued = shop.app.issue(Issue::default()).await;
    let cookie = shop.sign_in(&issued.key).await;
    let (_, account) = shop
        .get(&format!("{}/account", shop.app.address), Some(&cookie))
        .await;
    let token = csrf(&account);
    let path = format!("/account/keys/{}/revoke", issued.key_id);

    let asked = shop
        .post_form(&path, Some(&cookie), &[("csrf", &token)])
        .await;
    assert_eq!(asked.status().as_u16(), 200);
    assert!(
        asked
            .text()
            .await
            .unwrap()
            .contains("Revoke your last key?")
    );
    assert_allowed(&shop.app, "@acme/a", &issued.key).await;

    let confirmed = shop
        .post_form(
            &path,
            Some(&cookie),
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;

    assert_eq!(location(&confirmed), "/account");
    let (status, _) = shop.app.authorize_json("@acme/a", &issued.key).await;
    assert_eq!(status, 400, "the revoked key is refused at once");
}

#[tokio::test]
async fn the_billing_button_opens_the_stripe_portal_for_a_paying_customer() {
    let shop = shop("Pro").await;
    let welcome = shop.buy().await;
    let (_, page) = shop.get(&welcome, None).await;
    let cookie = shop.sign_in(&revealed_key(&page).unwrap()).await;
    let (_, account) = shop
        .get(&format!("{}/account", shop.app.address), Some(&cookie))
        .await;
    assert!(
        account.contains("Renews"),
        "the subscription is listed: {account}"
    );
    assert!(
        account.contains("0 of 1,000 predictions this period"),
        "{account}"
    );
    assert!(
        account.contains("all of acme&#39;s predictors"),
        "what the plan covers, as people read it: {account}"
    );

    let portal = shop
        .post_form(
            "/account/billing",
            Some(&cookie),
            &[("csrf", &csrf(&account))],
        )
        .await;

    assert_eq!(location(&portal), format!("{}/portal", shop.fake.base));
}

#[tokio::test]
async fn a_copy_of_the_cookie_is_refused_once_its_session_signed_out() {
    let shop = shop("Pro").await;
    let issued = shop.app.issue(Issue::default()).await;
    let cookie = shop.sign_in(&issued.key).await;
    let account_url = format!("{}/account", shop.app.address);
    let (_, account) = shop.get(&account_url, Some(&cookie)).await;
    let token = csrf(&account);

    let signed_out = shop
        .post_form("/account/sign-out", Some(&cookie), &[("csrf", &token)])
        .await
        .status();
    let (_, replayed) = shop.get(&account_url, Some(&cookie)).await;
    let create = shop
        .post_form(
            "/account/keys",
            Some(&cookie),
            &[("name", "stolen"), ("csrf", &token)],
        )
        .await
        .status();

    assert_eq!(signed_out, 303);
    assert!(
        replayed.contains(r#"name="key""#) && !replayed.contains("Sign out"),
        "the copy shows the sign-in form, not the account: {replayed}"
    );
    assert_eq!(create, 403, "the copy cannot make keys");
}

#[tokio::test]
async fn signing_out_everywhere_ends_the_other_devices_sessions() {
    let shop = shop("Pro").await;
    let issued = shop.app.issue(Issue::default()).await;
    let laptop = shop.sign_in(&issued.key).await;
    let phone = shop.sign_in(&issued.key).await;
    let account_url = format!("{}/account", shop.app.address);
    let (_, account) = shop.get(&account_url, Some(&laptop)).await;

    let status = shop
        .post_form(
            "/account/sign-out-everywhere",
            Some(&laptop),
            &[("csrf", &csrf(&account))],
        )
        .await
        .status();
    let (_, on_phone) = shop.get(&account_url, Some(&phone)).await;

    assert_eq!(status, 303);
    assert_ne!(laptop, phone, "two sign-ins, two sessions");
    assert!(
        on_phone.contains(r#"name="key""#),
        "the phone is signed out too: {on_phone}"
    );
}

#[tokio::test]
async fn a_free_plan_is_sold_without_a_card_and_fulfilled_like_any_other() {
    let shop = shop("Starter").await;
    let mut free = price();
    free["unit_amount"] = serde_json::json!(0);
    shop.app
        .store
        .upsert_price(&objects::price(&free, unix_now() * 1000).unwrap())
        .await
        .unwrap();
    let (_, plans) = shop.get(&format!("{}/", shop.app.address), None).await;
    assert!(
        plans.contains("Free") && plans.contains("Start for free"),
        "{plans}"
    );

    let welcome = shop.buy().await;
    let form = shop.fake.last_created();
    assert_eq!(form.get("mode").map(String::as_str), Some("subscription"));
    assert_eq!(
        form.get("payment_method_collection").map(String::as_str),
        Some("if_required"),
        "no card asked for a free plan: {form:?}"
    );
    let (_, page) = shop.get(&welcome, None).await;
    let key = revealed_key(&page).expect("the key of the free plan");
    assert_allowed(&shop.app, "@acme/sdxl", &key).await;
}

#[tokio::test]
async fn a_paid_plan_asks_for_a_card_as_before() {
    let shop = shop("Pro").await;
    shop.buy().await;
    assert_eq!(
        shop.fake.last_created().get("payment_method_collection"),
        None
    );
}

#[tokio::test]
async fn the_account_page_charts_use_per_day_and_predictor_by_key_with_a_csv_of_the_same() {
    let shop = shop("Pro").await;
    let welcome = shop.buy().await;
    let (_, page) = shop.get(&welcome, None).await;
    let key = revealed_key(&page).unwrap();
    let cookie = shop.sign_in(&key).await;
    for tag in ["@acme/sdxl", "@acme/sdxl", "@acme/llama"] {
        assert_allowed(&shop.app, tag, &key).await;
    }
    shop.app
        .gate
        .flush(shop.app.store.as_ref(), unix_now(), true)
        .await
        .unwrap();
    let (_, account) = shop
        .get(&format!("{}/account", shop.app.address), Some(&cookie))
        .await;
    assert!(
        account.contains("3 predictions in the last 30 days"),
        "{account}"
    );
    assert!(
        account.contains("<svg") && account.contains("@acme/llama"),
        "{account}"
    );

    let key_id = {
        let at = account.find("<option value=\"key_").unwrap() + "<option value=\"".len();
        account[at..at + account[at..].find('"').unwrap()].to_owned()
    };
    let csv = shop
        .client
        .get(format!(
            "{}/account/usage.csv?key={key_id}",
            shop.app.address
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let today = tollbooth::domain::calendar::date(unix_now());
    assert!(
        text.starts_with("day,key_id,predictor,predictions\r\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{today},{key_id},'@acme/sdxl,2")),
        "{text}"
    );
    let (_, other) = shop
        .get(
            &format!("{}/account?key=key_not_theirs", shop.app.address),
            Some(&cookie),
        )
        .await;
    assert!(
        other.contains("3 predictions"),
        "an unknown key shows all keys: {other}"
    );
    let signed_out = shop
        .client
        .get(format!("{}/account/usage.csv", shop.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_out.status(),
        303,
        "the CSV is the signed-in customer's only"
    );
}
