//! Customers and their access keys: what issuing, listing and revoking a key reads and writes.
//! Keys are stored as their SHA-256 and a display prefix, never as themselves.

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::FromRow;

use super::audit::{Change, audit};
use super::grants::{NewGrant, insert_grant};
use super::snapshot::record_change;
use super::sql::{Statement, Tx, sql};
use super::{BoxFuture, Db};
use crate::clock::unix_now;
use crate::domain::KeyCap;

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
    /// Every key whose id, display prefix or hash (hex) is `selector`.
    fn keys_matching<'a>(
        &'a self,
        selector: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>>;
    /// Stores the new key and sets when the old one stops, in one transaction; `false` (and
    /// nothing written) when the old key is no longer active or was rolled already.
    fn roll_key<'a>(&'a self, roll: &'a RollKey) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Sets or clears an active key's own cap; `false` when no active key has the id.
    fn set_key_cap<'a>(
        &'a self,
        key_id: &'a str,
        cap: Option<KeyCap>,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
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
    pub cap: Option<KeyCap>,
}

/// A key replaced by a new one, which keeps working until `old_expires_at`.
#[derive(Debug)]
pub struct RollKey {
    pub old_id: String,
    pub new: NewKey,
    pub old_expires_at: i64,
    /// A session signed in with the old key that moves to the new one (the customer's own,
    /// when they roll on the account page); other sessions end with the old key.
    pub session: Option<String>,
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
    /// When a rolled key stops (or stopped).
    pub expires_at: Option<i64>,
    /// The key that replaced this one, once rolled.
    pub replaced_by: Option<String>,
    pub cap: Option<i64>,
    pub cap_period: Option<String>,
}

/// The columns of a [`KeyListing`] and the tables they come from (`k`, `c`, `a`).
pub(super) const KEY_LISTING: &str = "k.id, k.customer_id, c.email, k.display_prefix, k.name, \
    k.created_at, k.revoked_at, a.last_used_at, k.expires_at, k.replaced_by, k.cap, \
    k.cap_period \
    FROM access_keys k JOIN customers c ON c.id = k.customer_id \
    LEFT JOIN key_activity a ON a.key_id = k.id";

impl KeyListing {
    /// Neither revoked nor, once rolled, past its grace period.
    pub fn active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }

    /// The key's own cap, if it has one.
    pub fn cap(&self) -> Option<KeyCap> {
        KeyCap::from_stored(self.cap, self.cap_period.as_deref())
    }
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
            self.fetch_all(
                sql("SELECT c.id, c.email, c.name, c.created_at, \
                    (SELECT COUNT(*) FROM access_keys k \
                      WHERE k.customer_id = c.id AND k.revoked_at IS NULL \
                        AND (k.expires_at IS NULL OR k.expires_at > $1)) AS active_keys, \
                    (SELECT COUNT(*) FROM grants g \
                      WHERE g.customer_id = c.id AND g.revoked_at IS NULL) AS grants, \
                    (SELECT COUNT(*) FROM subscriptions s \
                      WHERE s.customer_id = c.id AND s.ended_at IS NULL) AS subscriptions \
                 FROM customers c WHERE c.deleted_at IS NULL ORDER BY c.created_at, c.id")
                .bind(unix_now()),
            )
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
                Statement::assembled(format!(
                    "SELECT {KEY_LISTING} WHERE $1 IS NULL OR k.customer_id = $1 \
                     ORDER BY k.created_at, k.id"
                ))
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

    fn keys_matching<'a>(
        &'a self,
        selector: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>> {
        Box::pin(async move {
            self.fetch_all(
                Statement::assembled(format!(
                    "SELECT {KEY_LISTING} \
                     WHERE k.id = $1 OR k.display_prefix = $1 OR k.key_hash = $1 \
                     ORDER BY k.created_at, k.id"
                ))
                .bind(selector),
            )
            .await
            .context("Failed to find the key")
        })
    }

    fn roll_key<'a>(&'a self, roll: &'a RollKey) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(self.roll(roll))
    }

    fn set_key_cap<'a>(
        &'a self,
        key_id: &'a str,
        cap: Option<KeyCap>,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(self.cap(key_id, cap))
    }
}

impl Db {
    async fn roll(&self, roll: &RollKey) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let stopped = tx
            .execute(
                sql("UPDATE access_keys SET expires_at = $1, replaced_by = $2 \
                     WHERE id = $3 AND customer_id = $4 AND revoked_at IS NULL \
                       AND expires_at IS NULL")
                .bind(roll.old_expires_at)
                .bind(&roll.new.id)
                .bind(&roll.old_id)
                .bind(&roll.new.customer_id),
            )
            .await
            .context("Failed to set when the rolled key stops")?;
        if stopped == 0 {
            tx.rollback().await.context("Failed to give up the roll")?;
            return Ok(false);
        }
        let customer = Some(roll.new.customer_id.as_str());
        audit(
            &mut tx,
            Change {
                action: "key.rolled",
                customer_id: customer,
                subject: Some(&roll.old_id),
                detail: Some(json!({
                    "replaced_by": roll.new.id,
                    "stops_at": roll.old_expires_at,
                })),
            },
        )
        .await?;
        insert_key(&mut tx, &roll.new, json!({ "rolled_from": roll.old_id })).await?;
        if let Some(session) = &roll.session {
            tx.execute(
                sql("UPDATE sessions SET key_id = $1 WHERE id = $2 AND key_id = $3")
                    .bind(&roll.new.id)
                    .bind(session)
                    .bind(&roll.old_id),
            )
            .await
            .context("Failed to move the session to the new key")?;
        }
        record_change(&mut tx, customer).await?;
        tx.commit().await.context("Failed to commit the roll")?;
        Ok(true)
    }

    async fn cap(&self, key_id: &str, cap: Option<KeyCap>) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let found: Option<(String, Option<i64>, Option<String>)> = tx
            .fetch_optional(
                sql("SELECT customer_id, cap, cap_period FROM access_keys \
                     WHERE id = $1 AND revoked_at IS NULL")
                .bind(key_id),
            )
            .await
            .context("Failed to find the key to cap")?;
        let Some((customer, before, before_period)) = found else {
            return Ok(false);
        };
        let before = KeyCap::from_stored(before, before_period.as_deref());
        if before == cap {
            return Ok(true);
        }
        tx.execute(
            sql("UPDATE access_keys SET cap = $1, cap_period = $2 WHERE id = $3")
                .bind(cap.map(|c| i64::try_from(c.limit).unwrap_or(i64::MAX)))
                .bind(cap.map(|c| c.per.as_str()))
                .bind(key_id),
        )
        .await
        .context("Failed to set the key's cap")?;
        audit(
            &mut tx,
            Change {
                action: "key.capped",
                customer_id: Some(&customer),
                subject: Some(key_id),
                detail: Some(json!({
                    "before": before.map(|c| c.to_string()),
                    "after": cap.map(|c| c.to_string()),
                })),
            },
        )
        .await?;
        record_change(&mut tx, Some(&customer)).await?;
        tx.commit()
            .await
            .context("Failed to commit the key's cap")?;
        Ok(true)
    }
}

/// Stores a new key and its audit row (`detail`: how it came to be).
async fn insert_key(tx: &mut Tx, key: &NewKey, mut detail: Value) -> anyhow::Result<()> {
    tx.execute(
        sql("INSERT INTO access_keys \
                (id, customer_id, key_hash, display_prefix, name, created_at, cap, cap_period) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(&key.key_hash)
        .bind(&key.display_prefix)
        .bind(&key.name)
        .bind(key.created_at)
        .bind(key.cap.map(|c| i64::try_from(c.limit).unwrap_or(i64::MAX)))
        .bind(key.cap.map(|c| c.per.as_str())),
    )
    .await
    .context("Failed to store the access key")?;
    if let (Some(cap), Some(detail)) = (key.cap, detail.as_object_mut()) {
        detail.insert("cap".into(), json!(cap.to_string()));
    }
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
