//! Access given by the owner by hand: a grant is created for a customer (alone, or with a new
//! key) and ended early when the owner takes it back. Both are ledger changes: running
//! processes see them through the ledger version, and each leaves an audit row.

use anyhow::Context as _;
use serde_json::json;

use super::audit::{Change, audit};
use super::snapshot::record_change;
use super::sql::{Tx, sql};
use super::{BoxFuture, Db};

pub trait Grants: Send + Sync {
    /// Gives a customer the grant (the customer must exist).
    fn create_grant<'a>(&'a self, grant: &'a NewGrant) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Ends the grant now, unless it has ended already.
    fn end_grant<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<EndGrant>>;
}

/// A grant to store: what it gives, to whom, until when.
#[derive(Debug)]
pub struct NewGrant {
    pub id: String,
    pub customer_id: String,
    pub predictors: String,
    pub quota: Option<i64>,
    pub quota_period: Option<String>,
    pub credits: Option<i64>,
    pub expires_at: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndGrant {
    Ended { customer_id: String },
    AlreadyEnded,
    NotFound,
}

impl Grants for Db {
    fn create_grant<'a>(&'a self, grant: &'a NewGrant) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            insert_grant(&mut tx, grant).await?;
            audit(
                &mut tx,
                Change {
                    action: "grant.created",
                    customer_id: Some(&grant.customer_id),
                    subject: Some(&grant.id),
                    detail: Some(json!({
                        "predictors": grant.predictors,
                        "quota": grant.quota,
                        "quota_period": grant.quota_period,
                        "credits": grant.credits,
                        "expires_at": grant.expires_at,
                        "note": grant.note,
                    })),
                },
            )
            .await?;
            record_change(&mut tx, Some(&grant.customer_id)).await?;
            tx.commit().await.context("Failed to commit the grant")
        })
    }

    fn end_grant<'a>(&'a self, id: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<EndGrant>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let found: Option<(String, Option<i64>)> = tx
                .fetch_optional(
                    sql("SELECT customer_id, revoked_at FROM grants WHERE id = $1").bind(id),
                )
                .await
                .context("Failed to find the grant")?;
            let outcome = match found {
                None => EndGrant::NotFound,
                Some((_, Some(_))) => EndGrant::AlreadyEnded,
                Some((customer_id, None)) => {
                    tx.execute(
                        sql("UPDATE grants SET revoked_at = $1 WHERE id = $2")
                            .bind(now)
                            .bind(id),
                    )
                    .await
                    .context("Failed to end the grant")?;
                    audit(
                        &mut tx,
                        Change {
                            action: "grant.ended",
                            customer_id: Some(&customer_id),
                            subject: Some(id),
                            detail: None,
                        },
                    )
                    .await?;
                    record_change(&mut tx, Some(&customer_id)).await?;
                    EndGrant::Ended { customer_id }
                }
            };
            tx.commit()
                .await
                .context("Failed to commit the grant's end")?;
            Ok(outcome)
        })
    }
}

/// Stores a grant (its audit row is the caller's: a grant made with a key is part of
/// `key.issued`).
pub(super) async fn insert_grant(tx: &mut Tx, g: &NewGrant) -> anyhow::Result<()> {
    tx.execute(
        sql(
            "INSERT INTO grants (id, customer_id, predictors, quota, quota_period, \
                credits, expires_at, note, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&g.id)
        .bind(&g.customer_id)
        .bind(&g.predictors)
        .bind(g.quota)
        .bind(&g.quota_period)
        .bind(g.credits)
        .bind(g.expires_at)
        .bind(&g.note)
        .bind(g.created_at),
    )
    .await
    .context("Failed to store the grant")?;
    Ok(())
}
