//! What the owner's back office reads, a page at a time: customers found by id or email, their
//! keys and their grants. Pages are ordered by creation and continue after a cursor (the last
//! row's creation time and id), so rows added meanwhile neither repeat nor shift a page.

use anyhow::Context as _;
use sqlx::FromRow;

use super::keys::{CustomerListing, KEY_LISTING, KeyListing};
use super::sql::{Statement, sql};
use super::{BoxFuture, Db};
use crate::clock::unix_now;

/// Where a page starts: after the row created at `created_at` with id `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub created_at: i64,
    pub id: String,
}

pub trait Directory: Send + Sync {
    /// Customers (not deleted) whose id is `search` or whose email contains it (any case),
    /// oldest first.
    fn search_customers<'a>(
        &'a self,
        search: Option<&'a str>,
        after: Option<&'a After>,
        limit: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<CustomerListing>>>;
    /// Keys, revoked ones included: everyone's, or one customer's; oldest first.
    fn page_keys<'a>(
        &'a self,
        customer_id: Option<&'a str>,
        after: Option<&'a After>,
        limit: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>>;
    /// A customer's grants, ended ones included, oldest first.
    fn grants_of<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<GrantListing>>>;
}

#[derive(Debug, Clone, FromRow)]
pub struct GrantListing {
    pub id: String,
    pub customer_id: String,
    pub predictors: String,
    pub quota: Option<i64>,
    pub quota_period: Option<String>,
    pub credits: Option<i64>,
    pub expires_at: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// `text` as a LIKE pattern that matches it anywhere, its own `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Directory for Db {
    fn search_customers<'a>(
        &'a self,
        search: Option<&'a str>,
        after: Option<&'a After>,
        limit: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<CustomerListing>>> {
        Box::pin(async move {
            self.fetch_all(
                sql("SELECT c.id, c.email, c.name, c.created_at, \
                        (SELECT COUNT(*) FROM access_keys k \
                          WHERE k.customer_id = c.id AND k.revoked_at IS NULL \
                            AND (k.expires_at IS NULL OR k.expires_at > $6)) AS active_keys, \
                        (SELECT COUNT(*) FROM grants g \
                          WHERE g.customer_id = c.id AND g.revoked_at IS NULL) AS grants, \
                        (SELECT COUNT(*) FROM subscriptions s \
                          WHERE s.customer_id = c.id AND s.ended_at IS NULL) AS subscriptions \
                     FROM customers c \
                     WHERE c.deleted_at IS NULL \
                       AND ($1 IS NULL OR c.id = $1 OR lower(c.email) LIKE $2 ESCAPE '\\') \
                       AND ($3 IS NULL OR c.created_at > $3 OR (c.created_at = $3 AND c.id > $4)) \
                     ORDER BY c.created_at, c.id LIMIT $5")
                .bind(search)
                .bind(&search.map(contains_pattern))
                .bind(after.map(|a| a.created_at))
                .bind(after.map(|a| a.id.as_str()))
                .bind(limit)
                .bind(unix_now()),
            )
            .await
            .context("Failed to search customers")
        })
    }

    fn page_keys<'a>(
        &'a self,
        customer_id: Option<&'a str>,
        after: Option<&'a After>,
        limit: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<KeyListing>>> {
        Box::pin(async move {
            self.fetch_all(
                Statement::assembled(format!(
                    "SELECT {KEY_LISTING} \
                     WHERE ($1 IS NULL OR k.customer_id = $1) \
                       AND ($2 IS NULL OR k.created_at > $2 OR (k.created_at = $2 AND k.id > $3)) \
                     ORDER BY k.created_at, k.id LIMIT $4"
                ))
                .bind(customer_id)
                .bind(after.map(|a| a.created_at))
                .bind(after.map(|a| a.id.as_str()))
                .bind(limit),
            )
            .await
            .context("Failed to list keys")
        })
    }

    fn grants_of<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<GrantListing>>> {
        Box::pin(async move {
            self.fetch_all(
                sql(
                    "SELECT id, customer_id, predictors, quota, quota_period, credits, \
                        expires_at, note, created_at, revoked_at \
                     FROM grants WHERE customer_id = $1 ORDER BY created_at, id",
                )
                .bind(customer_id),
            )
            .await
            .context("Failed to list grants")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn a_search_matches_its_own_wildcards_literally() {
        assert_eq!(contains_pattern("Ann@X.io"), "%ann@x.io%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
