//! The Stripe objects the ledger mirrors: customers, products, prices, subscriptions with their
//! items, and one-time purchases, each written with a guard so an older read of Stripe never
//! overwrites a newer one; and the catalog the pricing page sells from.

use anyhow::Context as _;
use serde_json::json;
use sqlx::FromRow;

use super::audit::{Change, audit, subscription_shown, subscription_state};
use super::keys::{Customer, insert_customer};
use super::meters::Meter;
use super::snapshot::record_change;
use super::sql::sql;
use super::{BoxFuture, Db};

pub trait Mirror: Send + Sync {
    /// Creates or updates a customer known from Stripe.
    fn upsert_customer<'a>(&'a self, customer: &'a Customer) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Marks a customer deleted in Stripe: their keys stop working.
    fn delete_customer<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>>;
    fn upsert_product<'a>(&'a self, product: &'a Product) -> BoxFuture<'a, anyhow::Result<()>>;
    fn upsert_price<'a>(&'a self, price: &'a Price) -> BoxFuture<'a, anyhow::Result<()>>;
    /// What a Billing Meter reads from an event's payload, by its event name.
    fn upsert_meter<'a>(&'a self, meter: &'a Meter) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Writes a subscription and replaces its items, unless the stored copy is newer
    /// (`stripe_updated`); returns whether it was written.
    fn put_subscription<'a>(
        &'a self,
        subscription: &'a Subscription,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
    fn put_purchase<'a>(&'a self, purchase: &'a Purchase) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Ids of the customers stored (and not deleted), Stripe's and those made here.
    fn customer_ids(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    /// Ids of the products and prices stored as active.
    fn active_catalog(&self) -> BoxFuture<'_, anyhow::Result<(Vec<String>, Vec<String>)>>;
    /// Marks products and prices that Stripe no longer has as inactive.
    fn deactivate_catalog<'a>(
        &'a self,
        products: &'a [String],
        prices: &'a [String],
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Prices on sale, with their products, for the plans page.
    fn catalog(&self) -> BoxFuture<'_, anyhow::Result<Vec<PlanRow>>>;
}

#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    /// The product's metadata as a JSON object of strings.
    pub metadata: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Price {
    pub id: String,
    pub product_id: String,
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    /// `one_time` or `recurring` ([`crate::domain::PriceType`]).
    pub price_type: String,
    pub recurring_interval: Option<String>,
    pub recurring_interval_count: Option<i64>,
    /// `licensed` or `metered` ([`crate::domain::UsageType`]), for recurring prices.
    pub usage_type: Option<String>,
    /// The Billing Meter of a metered price, and the event name it counts.
    pub meter_id: Option<String>,
    pub meter_event_name: Option<String>,
    pub nickname: Option<String>,
    pub metadata: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub past_due_since: Option<i64>,
    pub created: i64,
    /// When this state was read from Stripe (milliseconds, taken before the request), the
    /// ordering guard: a state read earlier never overwrites one read later.
    pub stripe_updated: i64,
    pub items: Vec<SubscriptionItem>,
}

#[derive(Debug, Clone)]
pub struct SubscriptionItem {
    pub id: String,
    pub price_id: String,
    pub quantity: i64,
    pub current_period_start: i64,
    pub current_period_end: i64,
}

#[derive(Debug, Clone)]
pub struct Purchase {
    pub id: String,
    pub customer_id: String,
    pub price_id: String,
    pub quantity: i64,
    pub payment_intent: Option<String>,
    pub paid_at: i64,
    pub refunded_at: Option<i64>,
    pub disputed_at: Option<i64>,
}

/// A price on sale (active, of an active product), with what the plan page shows.
#[derive(Debug, Clone, FromRow)]
pub struct PlanRow {
    pub price_id: String,
    pub product_id: String,
    pub name: String,
    pub description: Option<String>,
    pub product_metadata: String,
    pub price_metadata: String,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub price_type: String,
    pub recurring_interval: Option<String>,
    pub recurring_interval_count: Option<i64>,
    pub usage_type: Option<String>,
}

impl Mirror for Db {
    fn upsert_meter<'a>(&'a self, meter: &'a Meter) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(super::meters::upsert_meter(self, meter))
    }

    fn upsert_customer<'a>(&'a self, customer: &'a Customer) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let before: Option<(Option<String>, Option<String>, Option<i64>)> = tx
                .fetch_optional(
                    sql("SELECT email, name, deleted_at FROM customers WHERE id = $1")
                        .bind(&customer.id),
                )
                .await
                .context("Failed to read a customer")?;
            insert_customer(&mut tx, customer).await?;
            let after = (customer.email.clone(), customer.name.clone(), None);
            if before.as_ref() != Some(&after) {
                let shown = |c: &(Option<String>, Option<String>, Option<i64>)| json!({"email": c.0, "name": c.1, "deleted_at": c.2});
                audit(
                    &mut tx,
                    Change {
                        action: if before.is_some() {
                            "customer.updated"
                        } else {
                            "customer.created"
                        },
                        customer_id: Some(&customer.id),
                        subject: Some(&customer.id),
                        detail: Some(json!({
                            "before": before.as_ref().map(shown),
                            "after": shown(&after),
                        })),
                    },
                )
                .await?;
            }
            record_change(&mut tx, Some(&customer.id)).await?;
            tx.commit().await.context("Failed to commit the customer")
        })
    }

    fn delete_customer<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let deleted = tx
                .execute(
                    sql("UPDATE customers SET deleted_at = $1 \
                         WHERE id = $2 AND deleted_at IS NULL")
                    .bind(now)
                    .bind(id),
                )
                .await
                .context("Failed to mark a customer deleted")?;
            if deleted > 0 {
                audit(
                    &mut tx,
                    Change {
                        action: "customer.deleted",
                        customer_id: Some(id),
                        subject: Some(id),
                        detail: None,
                    },
                )
                .await?;
            }
            record_change(&mut tx, Some(id)).await?;
            tx.commit()
                .await
                .context("Failed to commit a customer deletion")
        })
    }

    fn upsert_product<'a>(&'a self, product: &'a Product) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // Only what the gate reads (name, metadata) changing is a ledger change: a re-fetch
            // of an unchanged product must not make every gate reload. (A write the
            // `updated_at` guard skips may bump it needlessly: one reload, harmless.)
            let mut tx = self.begin_write().await?;
            let before: Option<(Option<String>, Option<String>)> = tx
                .fetch_optional(
                    sql("SELECT name, metadata FROM products WHERE id = $1").bind(&product.id),
                )
                .await
                .context("Failed to read a product")?;
            tx.execute(
                sql(
                    "INSERT INTO products (id, name, description, active, metadata, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                         description = excluded.description, active = excluded.active, \
                         metadata = excluded.metadata, updated_at = excluded.updated_at \
                     WHERE products.updated_at <= excluded.updated_at",
                )
                .bind(&product.id)
                .bind(&product.name)
                .bind(&product.description)
                .bind(product.active)
                .bind(&product.metadata)
                .bind(product.updated_at),
            )
            .await
            .context("Failed to store a product")?;
            let written = (Some(product.name.clone()), Some(product.metadata.clone()));
            if before.as_ref() != Some(&written) {
                let shown =
                    |p: &(Option<String>, Option<String>)| json!({"name": p.0, "metadata": p.1});
                audit(
                    &mut tx,
                    Change {
                        action: "product.updated",
                        customer_id: None,
                        subject: Some(&product.id),
                        detail: Some(json!({
                            "before": before.as_ref().map(shown),
                            "after": shown(&written),
                        })),
                    },
                )
                .await?;
                record_change(&mut tx, None).await?;
            }
            tx.commit().await.context("Failed to commit a product")
        })
    }

    fn upsert_price<'a>(&'a self, price: &'a Price) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // As for products: only a change of what the gate reads reloads it.
            type Read = (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let mut tx = self.begin_write().await?;
            let before: Option<Read> = tx
                .fetch_optional(
                    sql("SELECT product_id, usage_type, metadata, meter_event_name \
                         FROM prices WHERE id = $1")
                    .bind(&price.id),
                )
                .await
                .context("Failed to read a price")?;
            tx.execute(
                sql(
                    "INSERT INTO prices (id, product_id, active, currency, unit_amount, \
                        price_type, recurring_interval, recurring_interval_count, usage_type, \
                        nickname, metadata, updated_at, meter_id, meter_event_name) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (id) DO UPDATE SET product_id = excluded.product_id, \
                         active = excluded.active, currency = excluded.currency, \
                         unit_amount = excluded.unit_amount, price_type = excluded.price_type, \
                         recurring_interval = excluded.recurring_interval, \
                         recurring_interval_count = excluded.recurring_interval_count, \
                         usage_type = excluded.usage_type, nickname = excluded.nickname, \
                         metadata = excluded.metadata, updated_at = excluded.updated_at, \
                         meter_id = excluded.meter_id, \
                         meter_event_name = excluded.meter_event_name \
                     WHERE prices.updated_at <= excluded.updated_at",
                )
                .bind(&price.id)
                .bind(&price.product_id)
                .bind(price.active)
                .bind(&price.currency)
                .bind(price.unit_amount)
                .bind(&price.price_type)
                .bind(&price.recurring_interval)
                .bind(price.recurring_interval_count)
                .bind(&price.usage_type)
                .bind(&price.nickname)
                .bind(&price.metadata)
                .bind(price.updated_at)
                .bind(&price.meter_id)
                .bind(&price.meter_event_name),
            )
            .await
            .context("Failed to store a price")?;
            let written: Read = (
                Some(price.product_id.clone()),
                price.usage_type.clone(),
                Some(price.metadata.clone()),
                price.meter_event_name.clone(),
            );
            if before.as_ref() != Some(&written) {
                let shown = |p: &Read| json!({"product": p.0, "usage_type": p.1, "metadata": p.2, "meter_event_name": p.3});
                audit(
                    &mut tx,
                    Change {
                        action: "price.updated",
                        customer_id: None,
                        subject: Some(&price.id),
                        detail: Some(json!({
                            "before": before.as_ref().map(shown),
                            "after": shown(&written),
                        })),
                    },
                )
                .await?;
                record_change(&mut tx, None).await?;
            }
            tx.commit().await.context("Failed to commit a price")
        })
    }

    fn put_subscription<'a>(
        &'a self,
        sub: &'a Subscription,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let before = subscription_state(&mut tx, &sub.id).await?;
            // Same-second ties are written: a re-fetch at the same stamp is at least as fresh
            // as what is stored.
            let written = tx
                .execute(
                    sql("INSERT INTO subscriptions (id, customer_id, status, \
                            cancel_at_period_end, cancel_at, canceled_at, ended_at, \
                            past_due_since, created, stripe_updated) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
                             status = excluded.status, \
                             cancel_at_period_end = excluded.cancel_at_period_end, \
                             cancel_at = excluded.cancel_at, canceled_at = excluded.canceled_at, \
                             ended_at = excluded.ended_at, \
                             past_due_since = excluded.past_due_since, \
                             created = excluded.created, stripe_updated = excluded.stripe_updated \
                         WHERE subscriptions.stripe_updated <= excluded.stripe_updated")
                    .bind(&sub.id)
                    .bind(&sub.customer_id)
                    .bind(&sub.status)
                    .bind(sub.cancel_at_period_end)
                    .bind(sub.cancel_at)
                    .bind(sub.canceled_at)
                    .bind(sub.ended_at)
                    .bind(sub.past_due_since)
                    .bind(sub.created)
                    .bind(sub.stripe_updated),
                )
                .await
                .context("Failed to store a subscription")?
                > 0;
            if written {
                tx.execute(
                    sql("DELETE FROM subscription_items WHERE subscription_id = $1").bind(&sub.id),
                )
                .await
                .context("Failed to replace subscription items")?;
                for item in &sub.items {
                    tx.execute(
                        sql(
                            "INSERT INTO subscription_items (id, subscription_id, price_id, \
                                quantity, current_period_start, current_period_end) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(&item.id)
                        .bind(&sub.id)
                        .bind(&item.price_id)
                        .bind(item.quantity)
                        .bind(item.current_period_start)
                        .bind(item.current_period_end),
                    )
                    .await
                    .context("Failed to store a subscription item")?;
                }
                let after = Some(subscription_shown(
                    &sub.status,
                    sub.cancel_at_period_end,
                    [
                        sub.cancel_at,
                        sub.canceled_at,
                        sub.ended_at,
                        sub.past_due_since,
                    ],
                    sub.items.iter().map(|i| {
                        let period = (i.current_period_start, i.current_period_end);
                        (
                            i.id.as_str(),
                            i.price_id.as_str(),
                            i.quantity,
                            period.0,
                            period.1,
                        )
                    }),
                ));
                if before != after {
                    audit(
                        &mut tx,
                        Change {
                            action: if before.is_some() {
                                "subscription.updated"
                            } else {
                                "subscription.created"
                            },
                            customer_id: Some(&sub.customer_id),
                            subject: Some(&sub.id),
                            detail: Some(json!({"before": before, "after": after})),
                        },
                    )
                    .await?;
                }
                record_change(&mut tx, Some(&sub.customer_id)).await?;
            }
            tx.commit()
                .await
                .context("Failed to commit a subscription")?;
            Ok(written)
        })
    }

    fn put_purchase<'a>(&'a self, purchase: &'a Purchase) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let before: Option<(Option<i64>, Option<i64>)> = tx
                .fetch_optional(
                    sql("SELECT refunded_at, disputed_at FROM purchases WHERE id = $1")
                        .bind(&purchase.id),
                )
                .await
                .context("Failed to read a purchase")?;
            tx.execute(
                sql(
                    "INSERT INTO purchases (id, customer_id, price_id, quantity, payment_intent, \
                        paid_at, refunded_at, disputed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (id) DO UPDATE SET refunded_at = excluded.refunded_at, \
                         disputed_at = excluded.disputed_at",
                )
                .bind(&purchase.id)
                .bind(&purchase.customer_id)
                .bind(&purchase.price_id)
                .bind(purchase.quantity)
                .bind(&purchase.payment_intent)
                .bind(purchase.paid_at)
                .bind(purchase.refunded_at)
                .bind(purchase.disputed_at),
            )
            .await
            .context("Failed to store a purchase")?;
            let action = match before {
                None => Some("purchase.recorded"),
                Some((refunded, _)) if refunded != purchase.refunded_at => {
                    Some("purchase.refunded")
                }
                Some((_, disputed)) if disputed != purchase.disputed_at => {
                    Some("purchase.disputed")
                }
                Some(_) => None,
            };
            if let Some(action) = action {
                audit(
                    &mut tx,
                    Change {
                        action,
                        customer_id: Some(&purchase.customer_id),
                        subject: Some(&purchase.id),
                        detail: Some(json!({
                            "price": purchase.price_id,
                            "quantity": purchase.quantity,
                            "paid_at": purchase.paid_at,
                            "refunded_at": purchase.refunded_at,
                            "disputed_at": purchase.disputed_at,
                        })),
                    },
                )
                .await?;
            }
            record_change(&mut tx, Some(&purchase.customer_id)).await?;
            tx.commit().await.context("Failed to commit a purchase")
        })
    }

    fn customer_ids(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let ids: Vec<(String,)> = self
                .fetch_all(sql(
                    "SELECT id FROM customers WHERE deleted_at IS NULL ORDER BY created_at, id",
                ))
                .await
                .context("Failed to list customers")?;
            Ok(ids.into_iter().map(|(id,)| id).collect())
        })
    }

    fn active_catalog(&self) -> BoxFuture<'_, anyhow::Result<(Vec<String>, Vec<String>)>> {
        Box::pin(async move {
            let products: Vec<(String,)> = self
                .fetch_all(sql("SELECT id FROM products WHERE active"))
                .await
                .context("Failed to list products")?;
            let prices: Vec<(String,)> = self
                .fetch_all(sql("SELECT id FROM prices WHERE active"))
                .await
                .context("Failed to list prices")?;
            Ok((
                products.into_iter().map(|(id,)| id).collect(),
                prices.into_iter().map(|(id,)| id).collect(),
            ))
        })
    }

    fn deactivate_catalog<'a>(
        &'a self,
        products: &'a [String],
        prices: &'a [String],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            for id in products {
                tx.execute(sql("UPDATE products SET active = FALSE WHERE id = $1").bind(id))
                    .await
                    .context("Failed to deactivate a product")?;
            }
            for id in prices {
                tx.execute(sql("UPDATE prices SET active = FALSE WHERE id = $1").bind(id))
                    .await
                    .context("Failed to deactivate a price")?;
            }
            if !products.is_empty() || !prices.is_empty() {
                audit(
                    &mut tx,
                    Change {
                        action: "catalog.deactivated",
                        customer_id: None,
                        subject: None,
                        detail: Some(json!({"products": products, "prices": prices})),
                    },
                )
                .await?;
            }
            record_change(&mut tx, None).await?;
            tx.commit()
                .await
                .context("Failed to commit catalog changes")
        })
    }

    fn catalog(&self) -> BoxFuture<'_, anyhow::Result<Vec<PlanRow>>> {
        Box::pin(async move {
            self.fetch_all(sql(
                "SELECT p.id AS price_id, p.product_id, pr.name, pr.description, \
                        pr.metadata AS product_metadata, p.metadata AS price_metadata, \
                        p.unit_amount, p.currency, p.price_type, p.recurring_interval, \
                        p.recurring_interval_count, p.usage_type \
                 FROM prices p JOIN products pr ON pr.id = p.product_id \
                 WHERE p.active AND pr.active \
                 ORDER BY pr.name, p.unit_amount, p.id",
            ))
            .await
            .context("Failed to read the catalog")
        })
    }
}
