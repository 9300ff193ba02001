//! Bringing the ledger in line with Stripe. Events are triggers, not truth: whatever an event
//! says about a customer, their whole state is read back from the API and written with the
//! time it was read, so a stale or out-of-order event can never re-open what Stripe closed.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::client::{ApiError, StripeApi, stripe_id};
use super::objects;
use crate::clock::unix_now_ms;
use crate::domain::StripeCustomerId;
use crate::store::{Meter, Mirror, Price};

/// What a sync changed, counted per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub customers: usize,
    pub subscriptions: usize,
    pub purchases: usize,
    pub products: usize,
    pub prices: usize,
    pub deactivated: usize,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} products, {} prices, {} customers, {} subscriptions, {} purchases synced; \
             {} products or prices Stripe no longer has marked inactive",
            self.products,
            self.prices,
            self.customers,
            self.subscriptions,
            self.purchases,
            self.deactivated
        )
    }
}

#[derive(Clone)]
pub struct Syncer {
    api: StripeApi,
    store: Arc<dyn Mirror>,
}

impl Syncer {
    pub fn new(api: StripeApi, store: Arc<dyn Mirror>) -> Self {
        Self { api, store }
    }

    pub fn api(&self) -> &StripeApi {
        &self.api
    }

    /// Acts on one webhook event. Unknown types are accepted and ignored.
    pub async fn handle_event(&self, event_type: &str, payload: &Value) -> anyhow::Result<()> {
        let object = &payload["data"]["object"];
        let customer = stripe_id(&object["customer"]);
        match event_type {
            "customer.deleted" => {
                let id = stripe_id(&object["id"]).context("customer.deleted without an id")?;
                self.store.delete_customer(id, unix_now_ms() / 1000).await
            }
            "customer.created" | "customer.updated" => {
                let id = stripe_id(&object["id"]).context("customer event without an id")?;
                self.refresh_customer(id).await.map(|_| ())
            }
            t if t.starts_with("product.") => {
                let id = stripe_id(&object["id"]).context("product event without an id")?;
                self.refresh_product(id).await.map(|_| ())
            }
            t if t.starts_with("price.") || t.starts_with("plan.") => {
                let id = stripe_id(&object["id"]).context("price event without an id")?;
                self.refresh_price(id, t.starts_with("plan."))
                    .await
                    .map(|_| ())
            }
            t if t.starts_with("charge.dispute.") => {
                // A dispute names its charge, not the customer.
                let charge_id = stripe_id(&object["charge"]).context("dispute without a charge")?;
                let charge = self
                    .api
                    .get(&format!("/charges/{charge_id}"), &json!({}))
                    .await?;
                match stripe_id(&charge["customer"]) {
                    Some(id) => self.refresh_customer(id).await.map(|_| ()),
                    None => Ok(()),
                }
            }
            t if t.starts_with("customer.subscription.")
                || t.starts_with("checkout.session.")
                || t.starts_with("invoice.")
                || t.starts_with("charge.") =>
            {
                match customer {
                    Some(id) => self.refresh_customer(id).await.map(|_| ()),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Re-reads a customer, all their subscriptions (any status, with items and per-item
    /// periods) and their paid one-time purchases with refunds and disputes, and writes them.
    pub async fn refresh_customer(&self, id: &str) -> anyhow::Result<SyncReport> {
        self.refresh_customer_with(id, &mut HashSet::new()).await
    }

    /// `refresh_customer`, skipping the products in `fresh` (already read in this sync) and
    /// adding the ones it reads, so each product is fetched once per sync.
    async fn refresh_customer_with(
        &self,
        id: &str,
        fresh: &mut HashSet<String>,
    ) -> anyhow::Result<SyncReport> {
        let stamp = unix_now_ms();
        let mut report = SyncReport::default();
        let customer = match self.api.get(&format!("/customers/{id}"), &json!({})).await {
            Ok(c) => c,
            Err(ApiError::NotFound(_)) => {
                self.store.delete_customer(id, stamp / 1000).await?;
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        };
        if objects::is_deleted(&customer) {
            self.store.delete_customer(id, stamp / 1000).await?;
            return Ok(report);
        }
        let customer =
            objects::customer(&customer).context("Stripe returned an unreadable customer")?;
        self.store.upsert_customer(&customer).await?;
        report.customers += 1;

        let subscriptions = self
            .api
            .list("/subscriptions", json!({"customer": id, "status": "all"}))
            .await?;
        for raw in &subscriptions {
            let Some((subscription, prices)) = objects::subscription(raw, stamp) else {
                tracing::warn!(customer = id, "Skipping an unreadable subscription");
                continue;
            };
            self.ensure_catalog(prices, &mut report, fresh).await?;
            if self.store.put_subscription(&subscription).await? {
                report.subscriptions += 1;
            }
        }

        // Servers without Checkout (emulators) leave purchases as they are, with a warning.
        let sessions = match self
            .api
            .list(
                "/checkout/sessions",
                json!({"customer": id, "status": "complete", "expand": ["data.line_items"]}),
            )
            .await
        {
            Ok(sessions) => sessions,
            Err(e @ (ApiError::NotFound(_) | ApiError::Unsupported(_))) => {
                tracing::warn!(customer = id, error = %e, "One-time purchases not refreshed");
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        for raw in &sessions {
            let Some((mut purchase, prices)) = objects::checkout_purchase(raw) else {
                continue;
            };
            if let Some(pi) = purchase.payment_intent.clone() {
                // A charge's refunds are not in its list entry unless expanded.
                let charges = self
                    .api
                    .list(
                        "/charges",
                        json!({"payment_intent": pi, "expand": ["data.refunds"]}),
                    )
                    .await?;
                for charge in &charges {
                    if charge["amount_refunded"].as_i64().unwrap_or(0) > 0 {
                        // When the first refund was made; the time of this read only when
                        // Stripe gave none.
                        let refunded_at = charge["refunds"]["data"]
                            .as_array()
                            .and_then(|refunds| {
                                refunds.iter().filter_map(|r| r["created"].as_i64()).min()
                            })
                            .unwrap_or(stamp / 1000);
                        purchase.refunded_at = Some(refunded_at);
                    }
                    if charge["disputed"].as_bool() == Some(true) {
                        purchase.disputed_at = Some(stamp / 1000);
                    }
                }
            }
            self.ensure_catalog(prices, &mut report, fresh).await?;
            self.store.put_purchase(&purchase).await?;
            report.purchases += 1;
        }
        Ok(report)
    }

    /// Writes prices seen inside subscriptions and sessions, and their products.
    async fn ensure_catalog(
        &self,
        prices: Vec<Price>,
        report: &mut SyncReport,
        fresh: &mut HashSet<String>,
    ) -> anyhow::Result<()> {
        for price in prices {
            let price = self.with_meter(price).await?;
            if fresh.insert(price.product_id.clone()) {
                self.refresh_product(&price.product_id).await?;
            }
            self.store.upsert_price(&price).await?;
            report.prices += 1;
        }
        Ok(())
    }

    /// A metered price with the event name of its Billing Meter, which use is reported to.
    async fn with_meter(&self, mut price: Price) -> anyhow::Result<Price> {
        if let Some(meter) = &price.meter_id {
            let raw = self
                .api
                .get(&format!("/billing/meters/{meter}"), &json!({}))
                .await?;
            price.meter_event_name = raw["event_name"].as_str().map(str::to_owned);
            if let Some(event_name) = &price.meter_event_name {
                // The keys the meter reads; Stripe's defaults when it names none.
                let key = |v: &Value, default: &str| {
                    v["event_payload_key"]
                        .as_str()
                        .filter(|k| !k.is_empty())
                        .unwrap_or(default)
                        .to_owned()
                };
                self.store
                    .upsert_meter(&Meter {
                        id: meter.clone(),
                        event_name: event_name.clone(),
                        customer_key: key(&raw["customer_mapping"], "stripe_customer_id"),
                        value_key: key(&raw["value_settings"], "value"),
                        updated_at: unix_now_ms() / 1000,
                    })
                    .await?;
            }
        }
        Ok(price)
    }

    pub async fn refresh_product(&self, id: &str) -> anyhow::Result<bool> {
        let stamp = unix_now_ms();
        match self.api.get(&format!("/products/{id}"), &json!({})).await {
            Ok(raw) if !objects::is_deleted(&raw) => {
                let product = objects::product(&raw, stamp).context("unreadable product")?;
                self.store.upsert_product(&product).await?;
                Ok(true)
            }
            Ok(_) | Err(ApiError::NotFound(_)) => {
                self.store.deactivate_catalog(&[id.to_owned()], &[]).await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn refresh_price(&self, id: &str, legacy_plan: bool) -> anyhow::Result<bool> {
        let stamp = unix_now_ms();
        let path = if legacy_plan { "plans" } else { "prices" };
        match self.api.get(&format!("/{path}/{id}"), &json!({})).await {
            Ok(raw) if !objects::is_deleted(&raw) => {
                let Some(price) = objects::price(&raw, stamp) else {
                    // Nothing can be sold or unlocked through it: retrying would not change
                    // that, so the event is done.
                    tracing::warn!(
                        price = id,
                        "Skipping a price or plan without an id or a product: it sells nothing"
                    );
                    return Ok(false);
                };
                let price = self.with_meter(price).await?;
                self.refresh_product(&price.product_id).await?;
                self.store.upsert_price(&price).await?;
                Ok(true)
            }
            Ok(_) | Err(ApiError::NotFound(_)) => {
                self.store.deactivate_catalog(&[], &[id.to_owned()]).await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The full reconcile: every product, price and customer (with their subscriptions and
    /// purchases); what Stripe no longer lists is marked inactive. `progress` hears each step.
    pub async fn reconcile(&self, progress: &(dyn Fn(&str) + Sync)) -> anyhow::Result<SyncReport> {
        let stamp = unix_now_ms();
        let mut report = SyncReport::default();
        progress("products");
        let products = self.api.list("/products", json!({})).await?;
        let mut seen_products = HashSet::new();
        for raw in &products {
            if let Some(product) = objects::product(raw, stamp) {
                seen_products.insert(product.id.clone());
                self.store.upsert_product(&product).await?;
                report.products += 1;
            }
        }
        progress("prices");
        let mut seen_prices = HashSet::new();
        let prices = match self.api.list("/prices", json!({})).await {
            Ok(prices) => Some(prices),
            // Servers without Prices (emulators): prices are learnt from subscriptions below,
            // and none is marked inactive.
            Err(e @ (ApiError::NotFound(_) | ApiError::Unsupported(_))) => {
                tracing::warn!(error = %e, "Prices not listed");
                None
            }
            Err(e) => return Err(e.into()),
        };
        for raw in prices.iter().flatten() {
            if let Some(price) = objects::price(raw, stamp) {
                let price = self.with_meter(price).await?;
                seen_prices.insert(price.id.clone());
                self.store.upsert_price(&price).await?;
                report.prices += 1;
            }
        }
        let listed = self.api.list("/customers", json!({})).await?;
        let mut ids: Vec<String> = listed
            .iter()
            .filter_map(|raw| stripe_id(&raw["id"]).map(str::to_owned))
            .collect();
        // Customers known here that Stripe no longer lists were deleted there; refreshing them
        // records that.
        let seen: HashSet<String> = ids.iter().cloned().collect();
        for local in self.store.customer_ids().await? {
            if StripeCustomerId::parse(&local).is_ok() && !seen.contains(&local) {
                ids.push(local);
            }
        }
        for (i, id) in ids.iter().enumerate() {
            progress(&format!("customers {}/{}", i + 1, ids.len()));
            let customer_report = self.refresh_customer_with(id, &mut seen_products).await?;
            report.customers += customer_report.customers;
            report.subscriptions += customer_report.subscriptions;
            report.purchases += customer_report.purchases;
        }
        let (local_products, local_prices) = self.store.active_catalog().await?;
        let gone_products: Vec<String> = local_products
            .into_iter()
            .filter(|id| !seen_products.contains(id))
            .collect();
        let gone_prices: Vec<String> = match prices {
            Some(_) => local_prices
                .into_iter()
                .filter(|id| !seen_prices.contains(id))
                .collect(),
            None => Vec::new(),
        };
        if !gone_products.is_empty() || !gone_prices.is_empty() {
            self.store
                .deactivate_catalog(&gone_products, &gone_prices)
                .await?;
        }
        report.deactivated = gone_products.len() + gone_prices.len();
        Ok(report)
    }
}
