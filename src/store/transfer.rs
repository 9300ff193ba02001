//! The ledger's tables as data, for `tollbooth export` and `import` (moving from SQLite to
//! PostgreSQL, or between machines). One line of JSON per row: `{"table": …, "row": [...]}`.

use anyhow::Context as _;

use super::audit::{Change, audit};
use super::snapshot::record_change;
use super::sql::{Arg, Kind, Statement, sql};
use super::{BoxFuture, Db};

use Kind::{Bool, Int, Text};

pub trait Transfer: Send + Sync {
    /// Every row of every ledger table ([`TABLES`]), in one consistent read.
    fn export(&self) -> BoxFuture<'_, anyhow::Result<Vec<TableRows>>>;
    /// Writes exported rows into this (empty) ledger in one transaction.
    fn import<'a>(&'a self, tables: &'a [TableRows]) -> BoxFuture<'a, anyhow::Result<usize>>;
}

/// Every table the ledger keeps, parents before children, with its columns. The ledger
/// version is not copied: an import bumps it.
pub const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("settings", &[("name", Text), ("value", Text)]),
    (
        "customers",
        &[
            ("id", Text),
            ("email", Text),
            ("name", Text),
            ("created_at", Int),
            ("deleted_at", Int),
        ],
    ),
    (
        "access_keys",
        &[
            ("id", Text),
            ("customer_id", Text),
            ("key_hash", Text),
            ("display_prefix", Text),
            ("name", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("expires_at", Int),
            ("replaced_by", Text),
            ("cap", Int),
            ("cap_period", Text),
        ],
    ),
    ("key_activity", &[("key_id", Text), ("last_used_at", Int)]),
    (
        "grants",
        &[
            ("id", Text),
            ("customer_id", Text),
            ("predictors", Text),
            ("quota", Int),
            ("quota_period", Text),
            ("credits", Int),
            ("expires_at", Int),
            ("note", Text),
            ("created_at", Int),
            ("revoked_at", Int),
        ],
    ),
    (
        "products",
        &[
            ("id", Text),
            ("name", Text),
            ("description", Text),
            ("active", Bool),
            ("metadata", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "prices",
        &[
            ("id", Text),
            ("product_id", Text),
            ("active", Bool),
            ("currency", Text),
            ("unit_amount", Int),
            ("price_type", Text),
            ("recurring_interval", Text),
            ("recurring_interval_count", Int),
            ("usage_type", Text),
            ("nickname", Text),
            ("metadata", Text),
            ("updated_at", Int),
            ("meter_id", Text),
            ("meter_event_name", Text),
        ],
    ),
    (
        "subscriptions",
        &[
            ("id", Text),
            ("customer_id", Text),
            ("status", Text),
            ("cancel_at_period_end", Bool),
            ("cancel_at", Int),
            ("canceled_at", Int),
            ("ended_at", Int),
            ("past_due_since", Int),
            ("created", Int),
            ("stripe_updated", Int),
        ],
    ),
    (
        "subscription_items",
        &[
            ("id", Text),
            ("subscription_id", Text),
            ("price_id", Text),
            ("quantity", Int),
            ("current_period_start", Int),
            ("current_period_end", Int),
        ],
    ),
    (
        "purchases",
        &[
            ("id", Text),
            ("customer_id", Text),
            ("price_id", Text),
            ("quantity", Int),
            ("payment_intent", Text),
            ("paid_at", Int),
            ("refunded_at", Int),
            ("disputed_at", Int),
        ],
    ),
    (
        "usage_counters",
        &[
            ("entitlement", Text),
            ("period_start", Int),
            ("customer_id", Text),
            ("used", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "usage_hourly",
        &[
            ("hour", Int),
            ("tag", Text),
            ("key_id", Text),
            ("customer_id", Text),
            ("count", Int),
        ],
    ),
    (
        "stripe_events",
        &[
            ("id", Text),
            ("event_type", Text),
            ("created", Int),
            ("payload", Text),
            ("received_at", Int),
            ("processed_at", Int),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("claimed_until", Int),
        ],
    ),
    (
        "meter_reports",
        &[
            ("id", Text),
            ("customer_id", Text),
            ("event_name", Text),
            ("value", Int),
            ("created_at", Int),
            ("sent_at", Int),
            ("attempts", Int),
            ("last_error", Text),
            ("set_aside_at", Int),
        ],
    ),
    (
        "billing_meters",
        &[
            ("event_name", Text),
            ("meter_id", Text),
            ("customer_key", Text),
            ("value_key", Text),
            ("updated_at", Int),
        ],
    ),
    ("instances", &[("id", Text), ("seen_at", Int)]),
    (
        "checkout_keys",
        &[
            ("session_id", Text),
            ("customer_id", Text),
            ("key_id", Text),
            ("created_at", Int),
        ],
    ),
    (
        "refusals_hourly",
        &[("hour", Int), ("reason", Text), ("count", Int)],
    ),
    (
        "key_refusals_hourly",
        &[
            ("hour", Int),
            ("key_id", Text),
            ("customer_id", Text),
            ("reason", Text),
            ("count", Int),
        ],
    ),
    (
        "audit_log",
        &[
            ("id", Text),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("customer_id", Text),
            ("subject", Text),
            ("detail", Text),
        ],
    ),
];

fn select_sql(table: &str, columns: &[(&str, Kind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    format!("SELECT {} FROM {table} ORDER BY 1", names.join(", "))
}

fn insert_sql(table: &str, columns: &[(&str, Kind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        params.join(", ")
    )
}

/// `(table, rows)` read from a store, each row a JSON array in column order.
pub type TableRows = (&'static str, Vec<Vec<serde_json::Value>>);

impl Transfer for Db {
    fn export(&self) -> BoxFuture<'_, anyhow::Result<Vec<TableRows>>> {
        Box::pin(async move {
            // Counts still in the usage log go into the counters first.
            super::Usage::fold_every_logged_row(self, crate::clock::unix_now()).await?;
            let mut tx = self.begin_read().await?;
            let mut out = Vec::new();
            for (table, columns) in TABLES {
                let kinds: Vec<Kind> = columns.iter().map(|(_, kind)| *kind).collect();
                let rows = tx
                    .fetch_values(Statement::assembled(select_sql(table, columns)), &kinds)
                    .await
                    .with_context(|| format!("Failed to read {table}"))?;
                out.push((*table, rows));
            }
            tx.commit().await.context("Failed to end the export read")?;
            Ok(out)
        })
    }

    fn import<'a>(&'a self, tables: &'a [TableRows]) -> BoxFuture<'a, anyhow::Result<usize>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let (existing,): (i64,) = tx
                .fetch_one(sql(
                    "SELECT (SELECT COUNT(*) FROM customers) + (SELECT COUNT(*) FROM products)",
                ))
                .await
                .context("Failed to check that the ledger is empty")?;
            anyhow::ensure!(
                existing == 0,
                "the target ledger is not empty; import only into a new database"
            );
            // The generated settings (authorize token, session secret) come from the export.
            tx.execute(sql("DELETE FROM settings"))
                .await
                .context("Failed to clear settings")?;
            let mut count = 0;
            for (table, columns) in TABLES {
                let insert = insert_sql(table, columns);
                for (name, rows) in tables.iter().filter(|(name, _)| name == table) {
                    for row in rows {
                        // An export from an earlier version lacks the columns added since, which
                        // are added at the end and may be null.
                        anyhow::ensure!(
                            row.len() <= columns.len(),
                            "a {name} row has {} values, more than its {} columns",
                            row.len(),
                            columns.len()
                        );
                        let missing = columns.len() - row.len();
                        let padded = row
                            .iter()
                            .chain(std::iter::repeat_n(&serde_json::Value::Null, missing));
                        let mut statement = Statement::assembled(insert.clone());
                        for ((column, kind), value) in columns.iter().zip(padded) {
                            let arg = Arg::from_json(*kind, value).with_context(|| {
                                format!("{name}.{column} has an unexpected value {value}")
                            })?;
                            statement = statement.bind(arg);
                        }
                        tx.execute(statement)
                            .await
                            .with_context(|| format!("Failed to import a {name} row"))?;
                        count += 1;
                    }
                }
            }
            audit(
                &mut tx,
                Change {
                    action: "ledger.imported",
                    customer_id: None,
                    subject: None,
                    detail: Some(serde_json::json!({ "rows": count })),
                },
            )
            .await?;
            record_change(&mut tx, None).await?;
            tx.commit().await.context("Failed to commit the import")?;
            // Fresh statistics, so the planner uses the indexes on the new rows at once
            // (PostgreSQL's autovacuum would get to it only later).
            self.execute(sql("ANALYZE"))
                .await
                .context("Failed to analyze the imported tables")?;
            Ok(count)
        })
    }
}
