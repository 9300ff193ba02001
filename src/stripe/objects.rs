//! Stripe objects read leniently from JSON: only the fields the ledger needs, with defaults
//! where API versions differ (per-item billing periods at the current version, per-subscription
//! ones before; `plan` on older subscription items). A field we do not need never stops a read.

use serde_json::Value;

use super::client::stripe_id;
use crate::domain::PriceType;
use crate::store::{Customer, Price, Product, Purchase, Subscription, SubscriptionItem};

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Metadata as a JSON object of strings (absent or odd shapes become `{}`).
fn metadata(v: &Value) -> String {
    match v {
        Value::Object(map) => Value::Object(map.clone()).to_string(),
        _ => "{}".to_owned(),
    }
}

pub fn is_deleted(v: &Value) -> bool {
    v["deleted"].as_bool() == Some(true)
}

pub fn customer(v: &Value) -> Option<Customer> {
    Some(Customer {
        id: stripe_id(&v["id"])?.to_owned(),
        email: text(&v["email"]),
        name: text(&v["name"]),
        created_at: int(&v["created"]).unwrap_or(0),
    })
}

pub fn product(v: &Value, stamp: i64) -> Option<Product> {
    Some(Product {
        id: stripe_id(&v["id"])?.to_owned(),
        name: text(&v["name"]).unwrap_or_else(|| "Untitled plan".to_owned()),
        description: text(&v["description"]),
        active: v["active"].as_bool().unwrap_or(true),
        metadata: metadata(&v["metadata"]),
        updated_at: int(&v["updated"]).unwrap_or(stamp / 1000),
    })
}

/// A price, or a legacy plan (object `plan`, `amount` instead of `unit_amount`).
pub fn price(v: &Value, stamp: i64) -> Option<Price> {
    let recurring = v.get("recurring").filter(|r| r.is_object());
    let is_plan = v["object"].as_str() == Some("plan");
    let (interval, interval_count, usage_type) = match (recurring, is_plan) {
        (Some(r), _) => (
            text(&r["interval"]),
            int(&r["interval_count"]),
            text(&r["usage_type"]),
        ),
        (None, true) => (
            text(&v["interval"]),
            int(&v["interval_count"]),
            text(&v["usage_type"]),
        ),
        (None, false) => (None, None, None),
    };
    // A price's meter is under `recurring`; a legacy plan carries it at the top level.
    let meter_id = recurring
        .and_then(|r| stripe_id(&r["meter"]))
        .or_else(|| is_plan.then(|| stripe_id(&v["meter"])).flatten())
        .map(str::to_owned);
    let price_type = match v["type"].as_str() {
        Some("one_time") => PriceType::OneTime,
        Some("recurring") => PriceType::Recurring,
        _ if interval.is_some() => PriceType::Recurring,
        _ => PriceType::OneTime,
    };
    Some(Price {
        id: stripe_id(&v["id"])?.to_owned(),
        product_id: stripe_id(&v["product"])?.to_owned(),
        active: v["active"].as_bool().unwrap_or(true),
        currency: text(&v["currency"]).unwrap_or_else(|| "usd".to_owned()),
        unit_amount: int(&v["unit_amount"]).or_else(|| int(&v["amount"])),
        price_type: price_type.as_str().to_owned(),
        recurring_interval: interval,
        recurring_interval_count: interval_count,
        usage_type,
        meter_id,
        meter_event_name: None,
        nickname: text(&v["nickname"]),
        metadata: metadata(&v["metadata"]),
        updated_at: stamp / 1000,
    })
}

/// A subscription with its items, and the prices embedded in those items. `stamp` is when this
/// state was read from Stripe (milliseconds), the ordering guard of the write.
pub fn subscription(v: &Value, stamp: i64) -> Option<(Subscription, Vec<Price>)> {
    let status = text(&v["status"])?;
    let sub_start = int(&v["current_period_start"]);
    let sub_end = int(&v["current_period_end"]);
    let mut prices = Vec::new();
    let items = v["items"]["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let price_object = if item["price"].is_object() {
                &item["price"]
            } else {
                &item["plan"]
            };
            if let Some(p) = price(price_object, stamp) {
                prices.push(p);
            }
            Some(SubscriptionItem {
                id: stripe_id(&item["id"])?.to_owned(),
                price_id: stripe_id(&item["price"])
                    .or_else(|| stripe_id(&item["plan"]))?
                    .to_owned(),
                quantity: int(&item["quantity"]).unwrap_or(1),
                current_period_start: int(&item["current_period_start"]).or(sub_start)?,
                current_period_end: int(&item["current_period_end"]).or(sub_end)?,
            })
        })
        .collect::<Vec<_>>();
    // Stripe does not say since when a subscription is past due; the renewal that failed is
    // at the start of the current period.
    let past_due_since = (status == "past_due")
        .then(|| items.iter().map(|i| i.current_period_start).max())
        .flatten();
    let subscription = Subscription {
        id: stripe_id(&v["id"])?.to_owned(),
        customer_id: stripe_id(&v["customer"])?.to_owned(),
        status,
        cancel_at_period_end: v["cancel_at_period_end"].as_bool().unwrap_or(false),
        cancel_at: int(&v["cancel_at"]),
        canceled_at: int(&v["canceled_at"]),
        ended_at: int(&v["ended_at"]),
        past_due_since,
        created: int(&v["created"]).unwrap_or(0),
        stripe_updated: stamp,
        items,
    };
    Some((subscription, prices))
}

/// A completed, paid Checkout Session in payment mode, as a one-time purchase (the first line
/// item's price and quantity), with the prices its line items embed.
pub fn checkout_purchase(v: &Value) -> Option<(Purchase, Vec<Price>)> {
    let paid = matches!(
        v["payment_status"].as_str(),
        Some("paid" | "no_payment_required")
    );
    if v["mode"].as_str() != Some("payment") || v["status"].as_str() != Some("complete") || !paid {
        return None;
    }
    let created = int(&v["created"]).unwrap_or(0);
    let line = v["line_items"]["data"].as_array()?.first()?;
    let price_value = &line["price"];
    let embedded = price(price_value, created * 1000).into_iter().collect();
    let purchase = Purchase {
        id: stripe_id(&v["id"])?.to_owned(),
        customer_id: stripe_id(&v["customer"])?.to_owned(),
        price_id: stripe_id(price_value)?.to_owned(),
        quantity: int(&line["quantity"]).unwrap_or(1),
        payment_intent: stripe_id(&v["payment_intent"]).map(str::to_owned),
        paid_at: created,
        refunded_at: None,
        disputed_at: None,
    };
    Some((purchase, embedded))
}
