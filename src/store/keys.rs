//! Customers and their access keys: what issuing, listing and revoking a key reads and writes.
//! Keys are stored as their SHA-256 and a display prefix, never as themselves.

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::FromRow;

use super::audit::{Change, audit};
use super::grants::{NewGrant, insert_grant};
use super::snapshot::record_change;
use super::sql::{Tx, sql};
use super::{BoxFuture, Db};

pub trait Keys: Send + Sync {
    fn customer<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Customer>>>;
    fn customers_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Customer>>>;
    fn list_customers(&self) -> BoxFuture<'_, anyhow::Result<Vec<CustomerListing>>>;
    /// Creates the key (and the customer and the grant, when given) in one transaction.
    fn issue_key<'a>(&'a self, issue: &'a IssueKey) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Stores the key of a Checkout Session unless that session already has one; returns
    /// whether this key is the session's (and may be shown).
    fn issue_key_for_session<'a>(
        &'a self,
        session_id: &'a str,
        issue: &'a IssueKey,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
    fn list_keys<'a>(
        &'a self,
        customer_id: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>>;
    /// Revokes the key whose id, display prefix or hash (hex) is `selector`.
    fn revoke_key<'a>(
        &'a self,
        selector: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<RevokeOutcome>>;
}

#[derive(Debug, Clone, FromRow)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, FromRow)]
pub struct CustomerListing {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: i64,
    pub active_keys: i64,
    pub grants: i64,
    pub subscriptions: i64,
}

/// A new key, with the customer to create first and the grant to give with it, if any.
#[derive(Debug)]
pub struct IssueKey {
    pub new_customer: Option<Customer>,
    pub key: NewKey,
    pub grant: Option<NewGrant>,
}

#[derive(Debug)]
pub struct NewKey {
    pub id: String,
    pub customer_id: String,
    pub key_hash: String,
    pub display_prefix: String,
    pub name: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, FromRow)]
pub struct KeyListing {
    pub id: String,
    pub customer_id: String,
    pub email: Option<String>,
    pub display_prefix: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked { id: String },
    AlreadyRevoked { id: String },
    NotFound,
    Ambiguous(Vec<String>),
}

impl Keys for Db {
    fn customer<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Customer>>> {
        Box::pin(async move {
            self.fetch_optional(
                sql("SELECT id, email, name, created_at FROM customers \
                     WHERE id = $1 AND deleted_at IS NULL")
                .bind(id),
            )
            .await
            .context("Failed to read a customer")
        })
    }

    fn customers_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Customer>>> {
        Box::pin(async move {
            self.fetch_all(
                sql("SELECT id, email, name, created_at FROM customers \
                     WHERE lower(email) = lower($1) AND deleted_at IS NULL ORDER BY created_at")
                .bind(email),
            )
            .await
            .context("Failed to find customers by email")
        })
    }

    fn list_customers(&self) -> BoxFuture<'_, anyhow::Result<Vec<CustomerListing>>> {
        Box::pin(async move {
            self.fetch_all(sql("SELECT c.id, c.email, c.name, c.created_at, \
                    (SELECT COUNT(*) FROM access_keys k \
                      WHERE k.customer_id = c.id AND k.revoked_at IS NULL) AS active_keys, \
                    (SELECT COUNT(*) FROM grants g \
                      WHERE g.customer_id = c.id AND g.revoked_at IS NULL) AS grants, \
                    (SELECT COUNT(*) FROM subscriptions s \
                      WHERE s.customer_id = c.id AND s.ended_at IS NULL) AS subscriptions \
                 FROM customers c WHERE c.deleted_at IS NULL ORDER BY c.created_at, c.id"))
                .await
                .context("Failed to list customers")
        })
    }

    fn issue_key<'a>(&'a self, issue: &'a IssueKey) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            if let Some(customer) = &issue.new_customer {
                insert_customer(&mut tx, customer).await?;
            }
            let detail = json!({
                "name": issue.key.name,
                "new_customer": issue.new_customer.is_some(),
                "grant": issue.grant.as_ref().map(|g| json!({
                    "id": g.id,
                    "predictors": g.predictors,
                    "quota": g.quota,
                    "quota_period": g.quota_period,
                    "credits": g.credits,
                    "expires_at": g.expires_at,
                })),
            });
            insert_key(&mut tx, &issue.key, detail).await?;
            if let Some(g) = &issue.grant {
                insert_grant(&mut tx, g).await?;
            }
            record_change(&mut tx, Some(&issue.key.customer_id)).await?;
            tx.commit().await.context("Failed to commit the new key")
        })
    }

    fn issue_key_for_session<'a>(
        &'a self,
        session_id: &'a str,
        issue: &'a IssueKey,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            insert_key(
                &mut tx,
                &issue.key,
                json!({ "checkout_session": session_id }),
            )
            .await?;
            let claimed = tx
                .execute(
                    sql(
                        "INSERT INTO checkout_keys (session_id, customer_id, key_id, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO NOTHING",
                    )
                    .bind(session_id)
                    .bind(&issue.key.customer_id)
                    .bind(&issue.key.id)
                    .bind(issue.key.created_at),
                )
                .await
                .context("Failed to bind the key to its checkout session")?
                > 0;
            if !claimed {
                tx.rollback()
                    .await
                    .context("Failed to drop the second key")?;
                return Ok(false);
            }
            record_change(&mut tx, Some(&issue.key.customer_id)).await?;
            tx.commit()
                .await
                .context("Failed to commit the checkout key")?;
            Ok(true)
        })
    }

    fn list_keys<'a>(
        &'a self,
        customer_id: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT k.id, k.customer_id, c.email, k.display_prefix, k.name, \
                        k.created_at, k.revoked_at, a.last_used_at \
                     FROM access_keys k JOIN customers c ON c.id = k.customer_id \
                     LEFT JOIN key_activity a ON a.key_id = k.id \
                     WHERE $1 IS NULL OR k.customer_id = $1 \
                     ORDER BY k.created_at, k.id",
                )
                .bind(customer_id),
            )
            .await
            .context("Failed to list keys")
        })
    }

    fn revoke_key<'a>(
        &'a self,
        selector: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<RevokeOutcome>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let found: Vec<(String, Option<i64>, String)> = tx
                .fetch_all(
                    sql("SELECT id, revoked_at, customer_id FROM access_keys \
                         WHERE id = $1 OR display_prefix = $1 OR key_hash = $1")
                    .bind(selector),
                )
                .await
                .context("Failed to find the key to revoke")?;
            let outcome = match found.as_slice() {
                [] => RevokeOutcome::NotFound,
                [(id, Some(_), _)] => RevokeOutcome::AlreadyRevoked { id: id.clone() },
                [(id, None, customer)] => {
                    tx.execute(
                        sql("UPDATE access_keys SET revoked_at = $1 WHERE id = $2")
                            .bind(now)
                            .bind(id),
                    )
                    .await
                    .context("Failed to revoke the key")?;
                    audit(
                        &mut tx,
                        Change {
                            action: "key.revoked",
                            customer_id: Some(customer),
                            subject: Some(id),
                            detail: None,
                        },
                    )
                    .await?;
                    record_change(&mut tx, Some(customer)).await?;
                    RevokeOutcome::Revoked { id: id.clone() }
                }
                many => {
                    RevokeOutcome::Ambiguous(many.iter().map(|(id, _, _)| id.clone()).collect())
                }
            };
            tx.commit()
                .await
                .context("Failed to commit the revocation")?;
            Ok(outcome)
        })
    }
}

/// Stores a new key and its audit row (`detail`: how it came to be).
async fn insert_key(tx: &mut Tx, key: &NewKey, detail: Value) -> anyhow::Result<()> {
    tx.execute(
        sql("INSERT INTO access_keys \
                (id, customer_id, key_hash, display_prefix, name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(&key.key_hash)
        .bind(&key.display_prefix)
        .bind(&key.name)
        .bind(key.created_at),
    )
    .await
    .context("Failed to store the access key")?;
    audit(
        tx,
        Change {
            action: "key.issued",
            customer_id: Some(&key.customer_id),
            subject: Some(&key.id),
            detail: Some(detail),
        },
    )
    .await
}

/// Creates a customer, or brings one back (from Stripe, or deleted) with what is known now.
pub(super) async fn insert_customer(tx: &mut Tx, customer: &Customer) -> anyhow::Result<()> {
    tx.execute(
        sql(
            "INSERT INTO customers (id, email, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, \
                 deleted_at = NULL",
        )
        .bind(&customer.id)
        .bind(&customer.email)
        .bind(&customer.name)
        .bind(customer.created_at),
    )
    .await
    .context("Failed to store the customer")?;
    Ok(())
}
