//! The audit log: every change of the ledger, by whom ([`Actor`]), written in the transaction
//! that makes the change, so a change and its row commit or fail together. Append-only: the
//! migration's triggers refuse updates and deletes. Kept forever, and moved with the ledger
//! by `export` and `import`.

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::FromRow;

use super::sql::{Tx, sql};
use super::{BoxFuture, Db};
use crate::domain::{Actor, random_base62};

pub trait Audit: Send + Sync {
    /// The newest `limit` rows, newest first: all, or one customer's.
    fn audit_log<'a>(
        &'a self,
        customer_id: Option<&'a str>,
        limit: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<AuditRow>>>;
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub customer_id: Option<String>,
    pub subject: Option<String>,
    /// JSON: what changed (before and after where it matters).
    pub detail: Option<String>,
}

/// One change, as the write that makes it describes it.
pub(super) struct Change<'a> {
    /// `key.issued`, `subscription.updated`, …
    pub action: &'static str,
    pub customer_id: Option<&'a str>,
    /// The object changed (a key, a subscription, a price).
    pub subject: Option<&'a str>,
    pub detail: Option<Value>,
}

/// Records `change` in `tx`, as the actor of the work running now.
pub(super) async fn audit(tx: &mut Tx, change: Change<'_>) -> anyhow::Result<()> {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    // Sorts by time; the random part keeps rows of the same microsecond apart.
    let id = format!("{micros:014x}{}", random_base62(8));
    let at = i64::try_from(micros / 1_000_000).unwrap_or(i64::MAX);
    let detail = change.detail.map(|d| d.to_string());
    tx.execute(
        sql(
            "INSERT INTO audit_log (id, at, actor, action, customer_id, subject, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(at)
        .bind(Actor::current().to_string())
        .bind(change.action)
        .bind(change.customer_id)
        .bind(change.subject)
        .bind(detail.as_deref()),
    )
    .await
    .context("Failed to write the audit log")?;
    Ok(())
}

impl Audit for Db {
    fn audit_log<'a>(
        &'a self,
        customer_id: Option<&'a str>,
        limit: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<AuditRow>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT id, at, actor, action, customer_id, subject, detail FROM audit_log \
                     WHERE $1 IS NULL OR customer_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(customer_id)
                .bind(limit),
            )
            .await
            .context("Failed to read the audit log")
        })
    }
}

/// A subscription as the audit log shows it, with its items (`None`: not stored).
pub(super) async fn subscription_state(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Value>> {
    type Row = (
        String,
        bool,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = tx
        .fetch_optional(
            sql(
                "SELECT status, cancel_at_period_end, cancel_at, canceled_at, ended_at, \
                    past_due_since FROM subscriptions WHERE id = $1",
            )
            .bind(id),
        )
        .await
        .context("Failed to read a subscription")?;
    let Some((status, cancel_at_period_end, cancel_at, canceled_at, ended_at, past_due_since)) =
        row
    else {
        return Ok(None);
    };
    let items: Vec<(String, String, i64, i64, i64)> = tx
        .fetch_all(
            sql(
                "SELECT id, price_id, quantity, current_period_start, current_period_end \
                 FROM subscription_items WHERE subscription_id = $1 ORDER BY id",
            )
            .bind(id),
        )
        .await
        .context("Failed to read a subscription's items")?;
    Ok(Some(subscription_shown(
        &status,
        cancel_at_period_end,
        [cancel_at, canceled_at, ended_at, past_due_since],
        items.iter().map(|(id, price, quantity, start, end)| {
            (id.as_str(), price.as_str(), *quantity, *start, *end)
        }),
    )))
}

/// The audit log's picture of a subscription: its state, and its items by id (the shape
/// [`subscription_state`] reads back).
pub(super) fn subscription_shown<'a>(
    status: &str,
    cancel_at_period_end: bool,
    [cancel_at, canceled_at, ended_at, past_due_since]: [Option<i64>; 4],
    items: impl Iterator<Item = (&'a str, &'a str, i64, i64, i64)>,
) -> Value {
    let mut items: Vec<_> = items.collect();
    items.sort_by_key(|item| item.0);
    json!({
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": cancel_at,
        "canceled_at": canceled_at,
        "ended_at": ended_at,
        "past_due_since": past_due_since,
        "items": items.iter().map(|(id, price, quantity, start, end)| json!({
            "id": id, "price": price, "quantity": quantity,
            "current_period_start": start, "current_period_end": end,
        })).collect::<Vec<_>>(),
    })
}
