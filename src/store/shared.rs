//! The queries both engines run as written: `$n` parameters, `RETURNING`, `ON CONFLICT` and
//! `CASE` mean the same on SQLite and PostgreSQL, and the column types decode to the same Rust
//! types. They are written once here and expanded inside each engine's `impl Store`, next to
//! the few methods that differ (connecting, migrating, starting a write transaction).
//! `$json_rows` is the one phrase that differs: how a JSON array parameter becomes rows
//! (`j.value`), so a batch of any size is one statement with one parameter.

macro_rules! ledger_queries {
    ($json_rows:literal) => {
        fn ping(&self) -> $crate::store::BoxFuture<'_, anyhow::Result<()>> {
            Box::pin(async move {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .context("Failed to reach the database")?;
                Ok(())
            })
        }

        fn close(&self) -> $crate::store::BoxFuture<'_, ()> {
            Box::pin(self.pool.close())
        }

        fn setting(
            &self,
            name: &'static str,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Option<String>>> {
            Box::pin(async move {
                sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .with_context(|| format!("Failed to read setting {name}"))
            })
        }

        fn setting_or_insert<'a>(
            &'a self,
            name: &'static str,
            value: &'a str,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<String>> {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(value)
                .execute(&self.pool)
                .await
                .with_context(|| format!("Failed to store setting {name}"))?;
                sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .with_context(|| format!("Failed to read setting {name}"))
            })
        }

        fn ledger_version(&self) -> $crate::store::BoxFuture<'_, anyhow::Result<i64>> {
            Box::pin(async move {
                sqlx::query_scalar("SELECT version FROM ledger_state WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .context("Failed to read the ledger version")
            })
        }

        fn load_ledger_into<'a>(
            &'a self,
            now: i64,
            sink: &'a mut dyn $crate::store::LedgerSink,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<i64>> {
            Box::pin(async move { read_ledger!(self, now, sink, "", "", "", "", "") })
        }

        fn ledger_changes(
            &self,
            after: i64,
        ) -> $crate::store::BoxFuture<
            '_,
            anyhow::Result<Option<Vec<$crate::store::LedgerChange>>>,
        > {
            Box::pin(async move {
                let mut tx = self.begin_read().await?;
                let version: i64 =
                    sqlx::query_scalar("SELECT version FROM ledger_state WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await
                        .context("Failed to read the ledger version")?;
                let changes: Vec<$crate::store::LedgerChange> = sqlx::query_as(
                    "SELECT version, customer_id FROM ledger_changes \
                     WHERE version > $1 AND version <= $2 ORDER BY version",
                )
                .bind(after)
                .bind(version)
                .fetch_all(&mut *tx)
                .await
                .context("Failed to read the ledger changes")?;
                tx.commit().await.context("Failed to end the changes read")?;
                // Every version has its change row, so a full run is exactly this long.
                let complete = changes.len() as i64 == version - after
                    && changes.first().is_none_or(|c| c.version == after + 1);
                Ok(complete.then_some(changes))
            })
        }

        fn load_customer<'a>(
            &'a self,
            customer_id: &'a str,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<$crate::store::LedgerRows>> {
            Box::pin(async move { read_customer(self, customer_id, now).await })
        }

        fn load_customer_of_key<'a>(
            &'a self,
            key_hash: &'a str,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<$crate::store::LedgerRows>> {
            Box::pin(async move {
                // The key's customer is found inside the same snapshot, on one connection: at
                // start-up every other connection may be busy, and opening one can cost more
                // than the whole lookup.
                let mut rows = $crate::store::LedgerRows::default();
                rows.version = read_ledger!(
                    self,
                    now,
                    &mut rows,
                    " AND k.customer_id = (SELECT customer_id FROM access_keys \
                         WHERE key_hash = $1 AND revoked_at IS NULL)",
                    " AND customer_id = (SELECT customer_id FROM access_keys \
                         WHERE key_hash = $1 AND revoked_at IS NULL)",
                    " AND s.customer_id = (SELECT customer_id FROM access_keys \
                         WHERE key_hash = $2 AND revoked_at IS NULL)",
                    " WHERE pu.customer_id = (SELECT customer_id FROM access_keys \
                         WHERE key_hash = $1 AND revoked_at IS NULL)",
                    " AND customer_id = (SELECT customer_id FROM access_keys \
                         WHERE key_hash = $2 AND revoked_at IS NULL)",
                    key_hash
                )?;
                Ok(rows)
            })
        }

        fn flush_usage<'a>(
            &'a self,
            batch: &'a $crate::store::UsageBatch,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                // Each table's rows travel as one JSON array in one parameter: one statement
                // per table however large the batch, and nothing to re-prepare per size.
                let mut tx = self.begin_write().await?;
                if !batch.counters.is_empty() {
                    let rows: Vec<_> = batch
                        .counters
                        .iter()
                        .map(|c| (&c.entitlement, c.period_start, &c.customer_id, c.used))
                        .collect();
                    sqlx::query(concat!(
                        "INSERT INTO usage_counters \
                            (entitlement, period_start, customer_id, used, updated_at) \
                         SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT), j.value ->> 2, \
                                CAST(j.value ->> 3 AS BIGINT), $2 \
                         FROM ", $json_rows, " WHERE true \
                         ON CONFLICT (entitlement, period_start) DO UPDATE \
                         SET used = usage_counters.used + excluded.used, \
                             updated_at = excluded.updated_at"
                    ))
                    .bind(serde_json::to_string(&rows)?)
                    .bind(batch.at)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to write usage counters")?;
                }
                if !batch.hourly.is_empty() {
                    let rows: Vec<_> = batch
                        .hourly
                        .iter()
                        .map(|h| (h.hour, &h.tag, &h.key_id, &h.customer_id, h.count))
                        .collect();
                    sqlx::query(concat!(
                        "INSERT INTO usage_hourly (hour, tag, key_id, customer_id, count) \
                         SELECT CAST(j.value ->> 0 AS BIGINT), j.value ->> 1, j.value ->> 2, \
                                j.value ->> 3, CAST(j.value ->> 4 AS BIGINT) \
                         FROM ", $json_rows, " WHERE true \
                         ON CONFLICT (hour, tag, key_id) \
                         DO UPDATE SET count = usage_hourly.count + excluded.count"
                    ))
                    .bind(serde_json::to_string(&rows)?)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to write hourly usage")?;
                }
                if !batch.last_used.is_empty() {
                    sqlx::query(concat!(
                        "INSERT INTO key_activity (key_id, last_used_at) \
                         SELECT j.value ->> 0, CAST(j.value ->> 1 AS BIGINT) \
                         FROM ", $json_rows, " WHERE true \
                         ON CONFLICT (key_id) DO UPDATE SET last_used_at = CASE \
                             WHEN excluded.last_used_at > key_activity.last_used_at \
                             THEN excluded.last_used_at ELSE key_activity.last_used_at END"
                    ))
                    .bind(serde_json::to_string(&batch.last_used)?)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to write key activity")?;
                }
                for m in &batch.meters {
                    sqlx::query(
                        "INSERT INTO meter_reports (id, customer_id, event_name, value, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(format!("mr_{}", $crate::domain::random_base62(24)))
                    .bind(&m.customer_id)
                    .bind(&m.event_name)
                    .bind(m.value)
                    .bind(batch.at)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to queue a meter report")?;
                }
                tx.commit().await.context("Failed to commit usage")?;
                Ok(())
            })
        }

        fn heartbeat<'a>(
            &'a self,
            instance: &'a str,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<i64>> {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO instances (id, seen_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                )
                .bind(instance)
                .bind(now)
                .execute(&self.pool)
                .await
                .context("Failed to record this instance's heartbeat")?;
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM instances WHERE id <> $1 AND seen_at >= $2",
                )
                .bind(instance)
                .bind(now - 10)
                .fetch_one(&self.pool)
                .await
                .context("Failed to count other instances")
            })
        }

        fn leave<'a>(&'a self, instance: &'a str) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                sqlx::query("DELETE FROM instances WHERE id = $1")
                    .bind(instance)
                    .execute(&self.pool)
                    .await
                    .context("Failed to remove this instance's heartbeat")?;
                Ok(())
            })
        }

        fn customer<'a>(
            &'a self,
            id: &'a str,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<Option<$crate::store::Customer>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT id, email, name, created_at FROM customers \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a customer")
            })
        }

        fn customers_by_email<'a>(
            &'a self,
            email: &'a str,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<Vec<$crate::store::Customer>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT id, email, name, created_at FROM customers \
                     WHERE lower(email) = lower($1) AND deleted_at IS NULL ORDER BY created_at",
                )
                .bind(email)
                .fetch_all(&self.pool)
                .await
                .context("Failed to find customers by email")
            })
        }

        fn list_customers(
            &self,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::CustomerListing>>>
        {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT c.id, c.email, c.name, c.created_at, \
                        (SELECT COUNT(*) FROM access_keys k \
                          WHERE k.customer_id = c.id AND k.revoked_at IS NULL) AS active_keys, \
                        (SELECT COUNT(*) FROM grants g \
                          WHERE g.customer_id = c.id AND g.revoked_at IS NULL) AS grants, \
                        (SELECT COUNT(*) FROM subscriptions s \
                          WHERE s.customer_id = c.id AND s.ended_at IS NULL) AS subscriptions \
                     FROM customers c WHERE c.deleted_at IS NULL ORDER BY c.created_at, c.id",
                )
                .fetch_all(&self.pool)
                .await
                .context("Failed to list customers")
            })
        }

        fn upsert_customer<'a>(
            &'a self,
            customer: &'a $crate::store::Customer,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                insert_customer(&mut tx, customer).await?;
                bump_version(&mut tx, Some(&customer.id)).await?;
                tx.commit().await.context("Failed to commit the customer")?;
                Ok(())
            })
        }

        fn issue_key<'a>(
            &'a self,
            issue: &'a $crate::store::IssueKey,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                if let Some(customer) = &issue.new_customer {
                    insert_customer(&mut tx, customer).await?;
                }
                insert_key(&mut tx, &issue.key).await?;
                if let Some(g) = &issue.grant {
                    sqlx::query(
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
                    .bind(g.created_at)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to store the grant")?;
                }
                bump_version(&mut tx, Some(&issue.key.customer_id)).await?;
                tx.commit().await.context("Failed to commit the new key")?;
                Ok(())
            })
        }

        fn list_keys<'a>(
            &'a self,
            customer_id: Option<&'a str>,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<Vec<$crate::store::KeyListing>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT k.id, k.customer_id, c.email, k.display_prefix, k.name, \
                            k.created_at, k.revoked_at, a.last_used_at \
                     FROM access_keys k JOIN customers c ON c.id = k.customer_id \
                     LEFT JOIN key_activity a ON a.key_id = k.id \
                     WHERE $1 IS NULL OR k.customer_id = $1 \
                     ORDER BY k.created_at, k.id",
                )
                .bind(customer_id)
                .fetch_all(&self.pool)
                .await
                .context("Failed to list keys")
            })
        }

        fn revoke_key<'a>(
            &'a self,
            selector: &'a str,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<$crate::store::RevokeOutcome>> {
            Box::pin(async move {
                use $crate::store::RevokeOutcome;
                let mut tx = self.begin_write().await?;
                let found: Vec<(String, Option<i64>, String)> = sqlx::query_as(
                    "SELECT id, revoked_at, customer_id FROM access_keys \
                     WHERE id = $1 OR display_prefix = $1",
                )
                .bind(selector)
                .fetch_all(&mut *tx)
                .await
                .context("Failed to find the key to revoke")?;
                let outcome = match found.as_slice() {
                    [] => RevokeOutcome::NotFound,
                    [(id, Some(_), _)] => RevokeOutcome::AlreadyRevoked { id: id.clone() },
                    [(id, None, customer)] => {
                        sqlx::query("UPDATE access_keys SET revoked_at = $1 WHERE id = $2")
                            .bind(now)
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .context("Failed to revoke the key")?;
                        bump_version(&mut tx, Some(customer)).await?;
                        RevokeOutcome::Revoked { id: id.clone() }
                    }
                    many => RevokeOutcome::Ambiguous(many.iter().map(|(id, _, _)| id.clone()).collect()),
                };
                tx.commit().await.context("Failed to commit the revocation")?;
                Ok(outcome)
            })
        }

        fn upsert_product<'a>(
            &'a self,
            product: &'a $crate::store::Product,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                // Only what the gate reads (name, metadata) changing is a ledger change: a
                // re-fetch of an unchanged product must not make every gate reload. (A write
                // the `updated_at` guard skips may bump it needlessly: one reload, harmless.)
                let mut tx = self.begin_write().await?;
                let before: Option<(Option<String>, Option<String>)> =
                    sqlx::query_as("SELECT name, metadata FROM products WHERE id = $1")
                    .bind(&product.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to read a product")?;
                sqlx::query(
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
                .bind(product.updated_at)
                .execute(&mut *tx)
                .await
                .context("Failed to store a product")?;
                let written = (Some(product.name.clone()), Some(product.metadata.clone()));
                if before != Some(written) {
                    bump_version(&mut tx, None).await?;
                }
                tx.commit().await.context("Failed to commit a product")?;
                Ok(())
            })
        }

        fn upsert_price<'a>(
            &'a self,
            price: &'a $crate::store::Price,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                // As for products: only a change of what the gate reads reloads it.
                type Read = (Option<String>, Option<String>, Option<String>, Option<String>);
                let mut tx = self.begin_write().await?;
                let before: Option<Read> = sqlx::query_as(
                    "SELECT product_id, usage_type, metadata, meter_event_name \
                     FROM prices WHERE id = $1",
                )
                    .bind(&price.id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to read a price")?;
                sqlx::query(
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
                .bind(&price.meter_event_name)
                .execute(&mut *tx)
                .await
                .context("Failed to store a price")?;
                let written: Read = (
                    Some(price.product_id.clone()),
                    price.usage_type.clone(),
                    Some(price.metadata.clone()),
                    price.meter_event_name.clone(),
                );
                if before != Some(written) {
                    bump_version(&mut tx, None).await?;
                }
                tx.commit().await.context("Failed to commit a price")?;
                Ok(())
            })
        }

        fn put_subscription<'a>(
            &'a self,
            sub: &'a $crate::store::Subscription,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<bool>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                // Same-second ties are written: a re-fetch at the same stamp is at least as
                // fresh as what is stored.
                let written = sqlx::query(
                    "INSERT INTO subscriptions (id, customer_id, status, cancel_at_period_end, \
                        cancel_at, canceled_at, ended_at, past_due_since, created, stripe_updated) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
                         status = excluded.status, \
                         cancel_at_period_end = excluded.cancel_at_period_end, \
                         cancel_at = excluded.cancel_at, canceled_at = excluded.canceled_at, \
                         ended_at = excluded.ended_at, past_due_since = excluded.past_due_since, \
                         created = excluded.created, stripe_updated = excluded.stripe_updated \
                     WHERE subscriptions.stripe_updated <= excluded.stripe_updated",
                )
                .bind(&sub.id)
                .bind(&sub.customer_id)
                .bind(&sub.status)
                .bind(sub.cancel_at_period_end)
                .bind(sub.cancel_at)
                .bind(sub.canceled_at)
                .bind(sub.ended_at)
                .bind(sub.past_due_since)
                .bind(sub.created)
                .bind(sub.stripe_updated)
                .execute(&mut *tx)
                .await
                .context("Failed to store a subscription")?
                .rows_affected()
                    > 0;
                if written {
                    sqlx::query("DELETE FROM subscription_items WHERE subscription_id = $1")
                        .bind(&sub.id)
                        .execute(&mut *tx)
                        .await
                        .context("Failed to replace subscription items")?;
                    for item in &sub.items {
                        sqlx::query(
                            "INSERT INTO subscription_items (id, subscription_id, price_id, \
                                quantity, current_period_start, current_period_end) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(&item.id)
                        .bind(&sub.id)
                        .bind(&item.price_id)
                        .bind(item.quantity)
                        .bind(item.current_period_start)
                        .bind(item.current_period_end)
                        .execute(&mut *tx)
                        .await
                        .context("Failed to store a subscription item")?;
                    }
                    bump_version(&mut tx, Some(&sub.customer_id)).await?;
                }
                tx.commit().await.context("Failed to commit a subscription")?;
                Ok(written)
            })
        }

        fn put_purchase<'a>(
            &'a self,
            purchase: &'a $crate::store::Purchase,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                sqlx::query(
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
                .bind(purchase.disputed_at)
                .execute(&mut *tx)
                .await
                .context("Failed to store a purchase")?;
                bump_version(&mut tx, Some(&purchase.customer_id)).await?;
                tx.commit().await.context("Failed to commit a purchase")?;
                Ok(())
            })
        }

        fn insert_event<'a>(
            &'a self,
            event: &'a $crate::store::NewEvent,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<bool>> {
            Box::pin(async move {
                let inserted = sqlx::query(
                    "INSERT INTO stripe_events \
                        (id, event_type, created, payload, received_at, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(&event.event_type)
                .bind(event.created)
                .bind(&event.payload)
                .bind(event.received_at)
                .execute(&self.pool)
                .await
                .context("Failed to store a webhook event")?
                .rows_affected();
                Ok(inserted > 0)
            })
        }

        fn claim_events(
            &self,
            now: i64,
            lease: i64,
            limit: i64,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::InboxEvent>>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let mut events: Vec<$crate::store::InboxEvent> = sqlx::query_as(Self::CLAIM_EVENTS)
                    .bind(now)
                    .bind(now + lease)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .context("Failed to claim webhook events")?;
                tx.commit().await.context("Failed to commit webhook claims")?;
                events.sort_by(|a, b| (a.created, a.received_at, &a.id).cmp(&(b.created, b.received_at, &b.id)));
                Ok(events)
            })
        }

        fn usage_since(
            &self,
            since: i64,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::UsageRow>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT entitlement, period_start, customer_id, used FROM usage_counters \
                     WHERE updated_at >= $1",
                )
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .context("Failed to read recent usage")
            })
        }

        fn unsent_meter_reports(
            &self,
            limit: i64,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::MeterReport>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT id, customer_id, event_name, value, created_at, attempts \
                     FROM meter_reports WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .context("Failed to read the meter outbox")
            })
        }

        fn meter_report_done<'a>(
            &'a self,
            id: &'a str,
            error: Option<&'a str>,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE meter_reports SET attempts = attempts + 1, last_error = $1, \
                        sent_at = CASE WHEN $1 IS NULL THEN $2 ELSE NULL END WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .context("Failed to record a meter report")?;
                Ok(())
            })
        }

        fn catalog(
            &self,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::PlanRow>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT p.id AS price_id, p.product_id, pr.name, pr.description, \
                            pr.metadata AS product_metadata, p.metadata AS price_metadata, \
                            p.unit_amount, p.currency, p.price_type, p.recurring_interval, \
                            p.recurring_interval_count, p.usage_type \
                     FROM prices p JOIN products pr ON pr.id = p.product_id \
                     WHERE p.active AND pr.active \
                     ORDER BY pr.name, p.unit_amount, p.id",
                )
                .fetch_all(&self.pool)
                .await
                .context("Failed to read the catalog")
            })
        }

        fn issue_key_for_session<'a>(
            &'a self,
            session_id: &'a str,
            issue: &'a $crate::store::IssueKey,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<bool>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                insert_key(&mut tx, &issue.key).await?;
                let claimed = sqlx::query(
                    "INSERT INTO checkout_keys (session_id, customer_id, key_id, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO NOTHING",
                )
                .bind(session_id)
                .bind(&issue.key.customer_id)
                .bind(&issue.key.id)
                .bind(issue.key.created_at)
                .execute(&mut *tx)
                .await
                .context("Failed to bind the key to its checkout session")?
                .rows_affected()
                    > 0;
                if !claimed {
                    tx.rollback().await.context("Failed to drop the second key")?;
                    return Ok(false);
                }
                bump_version(&mut tx, Some(&issue.key.customer_id)).await?;
                tx.commit().await.context("Failed to commit the checkout key")?;
                Ok(true)
            })
        }

        fn export(
            &self,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::transfer::TableRows>>>
        {
            Box::pin(async move {
                use sqlx::Row as _;
                use $crate::store::transfer::{select_sql, Kind, TABLES};
                let mut tx = self.begin_read().await?;
                let mut out = Vec::new();
                for (table, columns) in TABLES {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(select_sql(table, columns)))
                        .fetch_all(&mut *tx)
                        .await
                        .with_context(|| format!("Failed to read {table}"))?;
                    let mut values = Vec::with_capacity(rows.len());
                    for row in rows {
                        let mut value = Vec::with_capacity(columns.len());
                        for (i, (_, kind)) in columns.iter().enumerate() {
                            value.push(match kind {
                                Kind::Int => serde_json::json!(row.try_get::<Option<i64>, _>(i)?),
                                Kind::Text => serde_json::json!(row.try_get::<Option<String>, _>(i)?),
                                Kind::Bool => serde_json::json!(row.try_get::<Option<bool>, _>(i)?),
                            });
                        }
                        values.push(value);
                    }
                    out.push((*table, values));
                }
                tx.commit().await.context("Failed to end the export read")?;
                Ok(out)
            })
        }

        fn import<'a>(
            &'a self,
            tables: &'a [$crate::store::transfer::TableRows],
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<usize>> {
            Box::pin(async move {
                use $crate::store::transfer::{insert_sql, Kind, TABLES};
                let mut tx = self.begin_write().await?;
                let existing: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM customers) + (SELECT COUNT(*) FROM products)",
                )
                .fetch_one(&mut *tx)
                .await
                .context("Failed to check that the ledger is empty")?;
                anyhow::ensure!(existing == 0, "the target ledger is not empty; import only into a new database");
                // The generated settings (authorize token, session secret) come from the export.
                sqlx::query("DELETE FROM settings")
                    .execute(&mut *tx)
                    .await
                    .context("Failed to clear settings")?;
                let mut count = 0;
                for (table, columns) in TABLES {
                    let sql = insert_sql(table, columns);
                    for (name, rows) in tables.iter().filter(|(name, _)| name == table) {
                        for row in rows {
                            anyhow::ensure!(row.len() == columns.len(), "a {name} row has {} values, not {}", row.len(), columns.len());
                            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                            for ((column, kind), value) in columns.iter().zip(row) {
                                query = match kind {
                                    Kind::Int => query.bind(value.as_i64()),
                                    Kind::Text => query.bind(value.as_str().map(str::to_owned)),
                                    Kind::Bool => query.bind(value.as_bool()),
                                };
                                anyhow::ensure!(
                                    value.is_null() || match kind {
                                        Kind::Int => value.is_i64(),
                                        Kind::Text => value.is_string(),
                                        Kind::Bool => value.is_boolean(),
                                    },
                                    "{name}.{column} has an unexpected value {value}"
                                );
                            }
                            query
                                .execute(&mut *tx)
                                .await
                                .with_context(|| format!("Failed to import a {name} row"))?;
                            count += 1;
                        }
                    }
                }
                bump_version(&mut tx, None).await?;
                tx.commit().await.context("Failed to commit the import")?;
                // Fresh statistics, so the planner uses the indexes on the new rows at once
                // (PostgreSQL's autovacuum would get to it only later).
                sqlx::query("ANALYZE")
                    .execute(&self.pool)
                    .await
                    .context("Failed to analyze the imported tables")?;
                Ok(count)
            })
        }

        fn stripe_event<'a>(
            &'a self,
            id: &'a str,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<Option<$crate::store::InboxEvent>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT id, event_type, created, payload, received_at, attempts, last_error, \
                        processed_at FROM stripe_events WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a webhook event")
            })
        }

        fn failed_events(
            &self,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<Vec<$crate::store::InboxEvent>>> {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT id, event_type, created, payload, received_at, attempts, last_error, processed_at \
                     FROM stripe_events WHERE processed_at IS NULL AND attempts > 0 \
                     ORDER BY created, id",
                )
                .fetch_all(&self.pool)
                .await
                .context("Failed to read failed webhook events")
            })
        }

        fn event_done<'a>(
            &'a self,
            id: &'a str,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE stripe_events SET processed_at = $1, attempts = attempts + 1, \
                        last_error = NULL, claimed_until = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .context("Failed to mark a webhook event processed")?;
                Ok(())
            })
        }

        fn event_failed<'a>(
            &'a self,
            id: &'a str,
            error: &'a str,
            retry_at: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE stripe_events SET attempts = attempts + 1, last_error = $1, \
                        next_attempt_at = $2, claimed_until = NULL WHERE id = $3",
                )
                .bind(error)
                .bind(retry_at)
                .bind(id)
                .execute(&self.pool)
                .await
                .context("Failed to record a webhook event failure")?;
                Ok(())
            })
        }

        fn delete_customer<'a>(
            &'a self,
            id: &'a str,
            now: i64,
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE customers SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to mark a customer deleted")?;
                bump_version(&mut tx, Some(id)).await?;
                tx.commit().await.context("Failed to commit a customer deletion")?;
                Ok(())
            })
        }

        fn active_catalog(
            &self,
        ) -> $crate::store::BoxFuture<'_, anyhow::Result<(Vec<String>, Vec<String>)>> {
            Box::pin(async move {
                let products = sqlx::query_scalar("SELECT id FROM products WHERE active")
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list products")?;
                let prices = sqlx::query_scalar("SELECT id FROM prices WHERE active")
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list prices")?;
                Ok((products, prices))
            })
        }

        fn deactivate_catalog<'a>(
            &'a self,
            products: &'a [String],
            prices: &'a [String],
        ) -> $crate::store::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                for id in products {
                    sqlx::query("UPDATE products SET active = FALSE WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .context("Failed to deactivate a product")?;
                }
                for id in prices {
                    sqlx::query("UPDATE prices SET active = FALSE WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .context("Failed to deactivate a price")?;
                }
                bump_version(&mut tx, None).await?;
                tx.commit().await.context("Failed to commit catalog changes")?;
                Ok(())
            })
        }
    };
}

/// Reads the rows the gate needs in one consistent snapshot: all of them, or, with a filter for
/// each query and the customer to bind last, one customer's (the start-up path).
macro_rules! read_ledger {
    ($self:ident, $now:expr, $sink:expr, $keys:literal, $grants:literal, $items:literal,
     $purchases:literal, $usage:literal $(, $customer:expr)?) => {{
        use futures_util::TryStreamExt as _;
        use $crate::store::{GrantRow, ItemRow, KeyRow, PurchaseRow, UsageRow};
        let sink: &mut dyn $crate::store::LedgerSink = $sink;
        // Ended subscriptions are kept for a year so a denial can say when they ended.
        let ended_after = $now - 366 * 86_400;
        let usage_after = $now - 62 * 86_400;
        let mut tx = $self.begin_read().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM ledger_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .context("Failed to read the ledger version")?;
        // Each row goes to the sink as it is decoded, so no table is ever held whole.
        let mut rows = sqlx::query_as::<_, KeyRow>(concat!(
            "SELECT k.id, k.customer_id, k.key_hash FROM access_keys k \
             JOIN customers c ON c.id = k.customer_id \
             WHERE k.revoked_at IS NULL AND c.deleted_at IS NULL",
            $keys
        ))
        $(.bind($customer))?
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.context("Failed to load access keys")? {
            sink.key(row);
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, GrantRow>(concat!(
            "SELECT id, customer_id, note, predictors, quota, quota_period, credits, expires_at \
             FROM grants WHERE revoked_at IS NULL",
            $grants,
            " ORDER BY created_at, id"
        ))
        $(.bind($customer))?
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.context("Failed to load grants")? {
            sink.grant(row);
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, ItemRow>(concat!(
            "SELECT si.id, s.customer_id, s.status, s.cancel_at_period_end, \
                    s.canceled_at, s.ended_at, s.past_due_since, \
                    si.current_period_start, si.current_period_end, p.usage_type, \
                    p.meter_event_name, pr.name AS product_name, \
                    pr.metadata AS product_metadata, p.metadata AS price_metadata \
             FROM subscription_items si \
             JOIN subscriptions s ON s.id = si.subscription_id \
             LEFT JOIN prices p ON p.id = si.price_id \
             LEFT JOIN products pr ON pr.id = p.product_id \
             WHERE (s.ended_at IS NULL OR s.ended_at > $1)",
            $items,
            " ORDER BY s.created, si.id"
        ))
        .bind(ended_after)
        $(.bind($customer))?
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.context("Failed to load subscriptions")? {
            sink.item(row);
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, PurchaseRow>(concat!(
            "SELECT pu.id, pu.customer_id, pu.quantity, pu.paid_at, pu.refunded_at, \
                    pu.disputed_at, pr.name AS product_name, \
                    pr.metadata AS product_metadata, p.metadata AS price_metadata \
             FROM purchases pu \
             LEFT JOIN prices p ON p.id = pu.price_id \
             LEFT JOIN products pr ON pr.id = p.product_id",
            $purchases,
            " ORDER BY pu.paid_at, pu.id"
        ))
        $(.bind($customer))?
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.context("Failed to load purchases")? {
            sink.purchase(row);
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, UsageRow>(concat!(
            "SELECT entitlement, period_start, customer_id, used FROM usage_counters \
             WHERE (period_start = 0 OR period_start > $1)",
            $usage
        ))
        .bind(usage_after)
        $(.bind($customer))?
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.context("Failed to load usage counters")? {
            sink.usage(row);
        }
        drop(rows);
        tx.commit().await.context("Failed to end the ledger read")?;
        anyhow::Ok(version)
    }};
}

/// Free functions used inside a transaction, expanded once per engine with its `Database`.
macro_rules! ledger_helpers {
    ($store:ty, $db:ty, $notify:expr) => {
        /// One customer's rows, read the way the whole ledger is.
        async fn read_customer(
            this: &$store,
            customer: &str,
            now: i64,
        ) -> anyhow::Result<$crate::store::LedgerRows> {
            let mut rows = $crate::store::LedgerRows::default();
            rows.version = read_ledger!(
                this,
                now,
                &mut rows,
                " AND k.customer_id = $1",
                " AND customer_id = $1",
                " AND s.customer_id = $2",
                " WHERE pu.customer_id = $1",
                " AND customer_id = $2",
                customer
            )?;
            Ok(rows)
        }

        /// Bumps the version, records which customer it changed (`None`: possibly many,
        /// such as the catalog) and, where the engine can (`$notify`), tells other processes
        /// at commit. Changes are kept for a window of versions; a gate further behind
        /// reloads everything.
        async fn bump_version(
            tx: &mut sqlx::Transaction<'static, $db>,
            customer: Option<&str>,
        ) -> anyhow::Result<()> {
            let version: i64 = sqlx::query_scalar(
                "UPDATE ledger_state SET version = version + 1 WHERE id = 1 RETURNING version",
            )
            .fetch_one(&mut **tx)
            .await
            .context("Failed to bump the ledger version")?;
            sqlx::query("INSERT INTO ledger_changes (version, customer_id) VALUES ($1, $2)")
                .bind(version)
                .bind(customer)
                .execute(&mut **tx)
                .await
                .context("Failed to record a ledger change")?;
            sqlx::query("DELETE FROM ledger_changes WHERE version <= $1")
                .bind(version - $crate::store::CHANGES_KEPT)
                .execute(&mut **tx)
                .await
                .context("Failed to trim the ledger changes")?;
            let notify: Option<&'static str> = $notify;
            if let Some(sql) = notify {
                sqlx::query(sql)
                    .execute(&mut **tx)
                    .await
                    .context("Failed to notify other instances")?;
            }
            Ok(())
        }

        async fn insert_key(
            tx: &mut sqlx::Transaction<'static, $db>,
            key: &$crate::store::NewKey,
        ) -> anyhow::Result<()> {
            sqlx::query(
                "INSERT INTO access_keys \
                    (id, customer_id, key_hash, display_prefix, name, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.id)
            .bind(&key.customer_id)
            .bind(&key.key_hash)
            .bind(&key.display_prefix)
            .bind(&key.name)
            .bind(key.created_at)
            .execute(&mut **tx)
            .await
            .context("Failed to store the access key")?;
            Ok(())
        }

        async fn insert_customer(
            tx: &mut sqlx::Transaction<'static, $db>,
            customer: &$crate::store::Customer,
        ) -> anyhow::Result<()> {
            sqlx::query(
                "INSERT INTO customers (id, email, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, \
                     deleted_at = NULL",
            )
            .bind(&customer.id)
            .bind(&customer.email)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&mut **tx)
            .await
            .context("Failed to store the customer")?;
            Ok(())
        }
    };
}

pub(super) use {ledger_helpers, ledger_queries, read_ledger};
