//! Values the service generates once and keeps (the authorize token, the session secret), so
//! they survive restarts and are the same on every instance.

use anyhow::Context as _;

use super::Db;
use super::sql::sql;

impl Db {
    pub async fn setting(&self, name: &'static str) -> anyhow::Result<Option<String>> {
        let value: Option<(String,)> = self
            .fetch_optional(sql("SELECT value FROM settings WHERE name = $1").bind(name))
            .await
            .with_context(|| format!("Failed to read setting {name}"))?;
        Ok(value.map(|(v,)| v))
    }

    /// Stores `value`, replacing any value before.
    pub async fn put_setting(&self, name: &'static str, value: &str) -> anyhow::Result<()> {
        self.execute(
            sql("INSERT INTO settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value),
        )
        .await
        .with_context(|| format!("Failed to store setting {name}"))?;
        Ok(())
    }

    /// Stores `value` unless a value exists; returns the one that is stored (first writer
    /// wins).
    pub async fn setting_or_insert(
        &self,
        name: &'static str,
        value: &str,
    ) -> anyhow::Result<String> {
        self.execute(
            sql("INSERT INTO settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value),
        )
        .await
        .with_context(|| format!("Failed to store setting {name}"))?;
        let (stored,): (String,) = self
            .fetch_one(sql("SELECT value FROM settings WHERE name = $1").bind(name))
            .await
            .with_context(|| format!("Failed to read setting {name}"))?;
        Ok(stored)
    }
}
