//! A small stateful Stripe for the buying flow: Checkout Sessions with a payment page, the
//! customer and subscription a payment creates, the signed `checkout.session.completed`
//! webhook, and the Billing Portal. Objects are Stripe's fixtures with the fields that matter.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tollbooth::clock::unix_now;

use crate::helpers::TestApp;
use crate::stripe_fake::{WEBHOOK_SECRET, fixture, list, sign};

pub const PRODUCT: &str = "prod_Shop0001";
pub const PRICE: &str = "price_Shop0001";

#[derive(Default)]
struct State {
    base: String,
    webhook_url: Option<String>,
    next: u32,
    sessions: HashMap<String, Value>,
    customers: HashMap<String, Value>,
    subscriptions: Vec<Value>,
    product_name: String,
    /// The form of the last Checkout Session created.
    last_created: HashMap<String, String>,
}

#[derive(Clone)]
pub struct FakeCheckout {
    pub base: String,
    state: Arc<Mutex<State>>,
}

pub fn product(name: &str) -> Value {
    let mut p = fixture("product");
    p["id"] = json!(PRODUCT);
    p["name"] = json!(name);
    p["description"] = json!("Every predictor, every month.");
    p["active"] = json!(true);
    p["metadata"] = json!({"predictors": "@acme/*", "quota": "1000"});
    p
}

pub fn price() -> Value {
    let mut p = fixture("price");
    p["id"] = json!(PRICE);
    p["product"] = json!(PRODUCT);
    p["active"] = json!(true);
    p["currency"] = json!("usd");
    p["unit_amount"] = json!(2000);
    p["type"] = json!("recurring");
    p["metadata"] = json!({});
    p["recurring"] = json!({"interval": "month", "interval_count": 1, "usage_type": "licensed", "meter": null, "trial_period_days": null});
    p
}

impl FakeCheckout {
    /// The form of the last Checkout Session created.
    pub fn last_created(&self) -> HashMap<String, String> {
        self.state.lock().unwrap().last_created.clone()
    }

    pub async fn start(product_name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            base: base.clone(),
            product_name: product_name.to_owned(),
            ..State::default()
        }));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/checkout/sessions", web::post().to(create_session))
                .route("/v1/checkout/sessions", web::get().to(list_sessions))
                .route("/v1/checkout/sessions/{id}", web::get().to(get_session))
                .route("/pay/{id}", web::get().to(pay_page))
                .route("/pay/{id}", web::post().to(pay))
                .route("/v1/customers/{id}", web::get().to(get_customer))
                .route("/v1/subscriptions", web::get().to(list_subscriptions))
                .route("/v1/products/{id}", web::get().to(get_product))
                .route("/v1/charges", web::get().to(empty_list))
                .route(
                    "/v1/billing_portal/sessions",
                    web::post().to(portal_session),
                )
                .route("/portal", web::get().to(portal_page))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { base, state }
    }

    /// Where to send `checkout.session.completed` once a session is paid.
    pub fn deliver_webhooks_to(&self, app: &TestApp) {
        self.state.lock().unwrap().webhook_url = Some(format!("{}/stripe/webhook", app.address));
    }

    /// A session left unpaid, for the pages that say so.
    pub fn open_session(&self) -> String {
        let mut state = self.state.lock().unwrap();
        let session = new_session(&mut state, "subscription", None, "http://unused/");
        let id = session["id"].as_str().unwrap().to_owned();
        state.sessions.insert(id.clone(), session);
        id
    }
}

type Shared = web::Data<Mutex<State>>;

fn new_session(state: &mut State, mode: &str, customer: Option<&str>, success_url: &str) -> Value {
    state.next += 1;
    let id = format!("cs_test_Shop{:04}", state.next);
    let mut s = fixture("checkout.session");
    s["id"] = json!(id);
    s["url"] = json!(format!("{}/pay/{id}", state.base));
    s["mode"] = json!(mode);
    s["status"] = json!("open");
    s["payment_status"] = json!("unpaid");
    s["customer"] = json!(customer);
    s["success_url"] = json!(success_url);
    s["created"] = json!(unix_now());
    s["payment_intent"] = Value::Null;
    let mut line = fixture("line_item");
    line["price"] = price();
    line["quantity"] = json!(1);
    s["line_items"] = list(vec![line]);
    s
}

async fn create_session(state: Shared, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    assert_eq!(
        form.get("line_items[0][price]").map(String::as_str),
        Some(PRICE)
    );
    state.last_created = form.0.clone();
    let mode = form.get("mode").cloned().unwrap_or_default();
    let success = form.get("success_url").cloned().unwrap_or_default();
    let session = new_session(
        &mut state,
        &mode,
        form.get("customer").map(String::as_str),
        &success,
    );
    state
        .sessions
        .insert(session["id"].as_str().unwrap().to_owned(), session.clone());
    HttpResponse::Ok().json(session)
}

async fn get_session(state: Shared, id: web::Path<String>) -> HttpResponse {
    match state.lock().unwrap().sessions.get(id.as_str()) {
        Some(s) => HttpResponse::Ok().json(s),
        None => HttpResponse::NotFound()
            .json(json!({"error": {"type": "invalid_request_error", "message": "No such checkout.session"}})),
    }
}

async fn list_sessions(state: Shared, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let state = state.lock().unwrap();
    let customer = query.get("customer").cloned();
    let data = state
        .sessions
        .values()
        .filter(|s| s["customer"].as_str() == customer.as_deref() && s["status"] == "complete")
        .cloned()
        .collect();
    HttpResponse::Ok().json(list(data))
}

async fn pay_page(state: Shared, id: web::Path<String>) -> HttpResponse {
    let name = state.lock().unwrap().product_name.clone();
    let escaped = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    HttpResponse::Ok().content_type("text/html").body(format!(
        "<!doctype html><title>Test checkout</title><h1>Test checkout</h1><p>{escaped}: $20.00 a month</p>\
         <form method=post action=/pay/{id}><button id=pay type=submit>Pay $20.00</button></form>"
    ))
}

/// Pays: creates the customer and the subscription, sends the signed webhook, and sends the
/// browser to the success URL, as Stripe does.
async fn pay(state: Shared, id: web::Path<String>) -> HttpResponse {
    let (session, webhook_url) = {
        let mut state = state.lock().unwrap();
        state.next += 1;
        let n = state.next;
        let Some(mut session) = state.sessions.get(id.as_str()).cloned() else {
            return HttpResponse::NotFound().finish();
        };
        let customer_id = match session["customer"].as_str() {
            Some(c) => c.to_owned(),
            None => {
                let id = format!("cus_Shop{n:04}");
                let mut c = fixture("customer");
                c["id"] = json!(id);
                c["email"] = json!(format!("buyer{n}@example.com"));
                state.customers.insert(id.clone(), c);
                id
            }
        };
        session["customer"] = json!(customer_id);
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        let now = unix_now();
        let mut item = fixture("subscription_item");
        item["id"] = json!(format!("si_Shop{n:04}"));
        item["price"] = price();
        item["plan"] = Value::Null;
        item["quantity"] = json!(1);
        item["current_period_start"] = json!(now);
        item["current_period_end"] = json!(now + 30 * 86_400);
        let mut sub = fixture("subscription");
        sub["id"] = json!(format!("sub_Shop{n:04}"));
        sub["customer"] = json!(customer_id);
        sub["status"] = json!("active");
        sub["created"] = json!(now);
        sub["cancel_at_period_end"] = json!(false);
        for field in ["cancel_at", "canceled_at", "ended_at"] {
            sub[field] = Value::Null;
        }
        sub["items"] = list(vec![item]);
        state.subscriptions.push(sub);
        state.sessions.insert(id.to_string(), session.clone());
        (session, state.webhook_url.clone())
    };
    if let Some(url) = webhook_url {
        let mut event = fixture("event");
        event["id"] = json!(format!("evt_{}", session["id"].as_str().unwrap()));
        event["type"] = json!("checkout.session.completed");
        event["created"] = json!(unix_now());
        event["data"] = json!({"object": session});
        let body = event.to_string();
        let signature = sign(&body, WEBHOOK_SECRET, unix_now());
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("Stripe-Signature", signature)
                .body(body)
                .send()
                .await;
        });
    }
    let success = session["success_url"]
        .as_str()
        .unwrap()
        .replace("{CHECKOUT_SESSION_ID}", session["id"].as_str().unwrap());
    HttpResponse::SeeOther()
        .insert_header(("Location", success))
        .finish()
}

async fn get_customer(state: Shared, id: web::Path<String>) -> HttpResponse {
    match state.lock().unwrap().customers.get(id.as_str()) {
        Some(c) => HttpResponse::Ok().json(c),
        None => HttpResponse::NotFound().json(
            json!({"error": {"type": "invalid_request_error", "message": "No such customer"}}),
        ),
    }
}

async fn list_subscriptions(
    state: Shared,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let state = state.lock().unwrap();
    let customer = query.get("customer").cloned();
    let data = state
        .subscriptions
        .iter()
        .filter(|s| s["customer"].as_str() == customer.as_deref())
        .cloned()
        .collect();
    HttpResponse::Ok().json(list(data))
}

async fn get_product(state: Shared) -> HttpResponse {
    HttpResponse::Ok().json(product(&state.lock().unwrap().product_name))
}

async fn empty_list() -> HttpResponse {
    HttpResponse::Ok().json(list(vec![]))
}

async fn portal_session(state: Shared) -> HttpResponse {
    let base = state.lock().unwrap().base.clone();
    let mut portal = fixture("billing_portal.session");
    portal["url"] = json!(format!("{base}/portal"));
    HttpResponse::Ok().json(portal)
}

async fn portal_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .body("<!doctype html><title>Billing portal</title><h1>Test billing portal</h1>")
}
