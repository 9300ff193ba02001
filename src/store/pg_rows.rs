//! PostgreSQL's side of a large read ([`super::sql::Tx::for_each_packed`]): each row streamed
//! and decoded into its row type by the columns' positions, with each column's type looked at
//! once per read. The driver's own decoding (`FromRow`) finds every column of every row by
//! its name in a hash map and checks its type again: at a million keys, a tenth of the load's
//! time (bench/results/2026-12-07-pg-rows.md).

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use sqlx::postgres::{PgRow, PgValueRef};
use sqlx::{Column as _, Decode, Postgres, Row as _, TypeInfo as _, ValueRef as _};

/// What a large read's column holds, as the ledger's tables store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    Int8,
    Int4,
    Text,
    Bool,
}

/// The columns of a read's rows (every row of one statement has the same), from its first.
pub(super) fn columns(row: &PgRow) -> anyhow::Result<Vec<Column>> {
    row.columns()
        .iter()
        .map(|column| {
            Ok(match column.type_info().name() {
                "INT8" => Column::Int8,
                "INT4" => Column::Int4,
                "TEXT" | "VARCHAR" => Column::Text,
                "BOOL" => Column::Bool,
                other => anyhow::bail!(
                    "The column {} is of type {other}, which a large read does not decode",
                    column.name()
                ),
            })
        })
        .collect()
}

/// `row` as a `T`, its columns (as [`columns`] found them) taken as `T`'s fields in order.
pub(super) fn decode<T: DeserializeOwned>(
    row: &PgRow,
    columns: &[Column],
) -> Result<T, de::value::Error> {
    T::deserialize(Fields {
        row,
        columns,
        at: 0,
    })
}

/// The row, read as a sequence of its columns.
struct Fields<'r> {
    row: &'r PgRow,
    columns: &'r [Column],
    at: usize,
}

impl<'de> Deserializer<'de> for Fields<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> SeqAccess<'de> for Fields<'_> {
    type Error = de::value::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        let Some(&column) = self.columns.get(self.at) else {
            return Ok(None);
        };
        let at = self.at;
        self.at += 1;
        let named = |e: &dyn std::fmt::Display| {
            de::Error::custom(format!("column {}: {e}", self.row.columns()[at].name()))
        };
        let value = self.row.try_get_raw(at).map_err(|e| named(&e))?;
        seed.deserialize(Value { value, column })
            .map(Some)
            .map_err(|e| named(&e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.columns.len() - self.at)
    }
}

/// One column's value.
struct Value<'r> {
    value: PgValueRef<'r>,
    column: Column,
}

impl Value<'_> {
    fn decoded<'r, T: Decode<'r, Postgres>>(value: PgValueRef<'r>) -> Result<T, de::value::Error> {
        T::decode(value).map_err(de::Error::custom)
    }
}

impl<'de> Deserializer<'de> for Value<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.value.is_null() {
            return visitor.visit_none();
        }
        match self.column {
            Column::Int8 => visitor.visit_i64(Self::decoded::<i64>(self.value)?),
            Column::Int4 => visitor.visit_i32(Self::decoded::<i32>(self.value)?),
            Column::Text => visitor.visit_str(Self::decoded::<&str>(self.value)?),
            Column::Bool => visitor.visit_bool(Self::decoded::<bool>(self.value)?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.value.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;
    use crate::store::ledger_rows::{ItemRow, KeyRow};

    /// On PostgreSQL only (`TEST_DATABASE_URL`, as the PostgreSQL suite runs): rows made by
    /// `SELECT`, no table needed.
    #[tokio::test]
    async fn a_row_is_decoded_by_its_columns_positions_and_types() {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            return;
        };
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut row = async |select: &str| {
            let select = sqlx::AssertSqlSafe(select.to_owned());
            sqlx::query(select).fetch_one(&mut conn).await.unwrap()
        };

        // Fields in order, the missing ones defaulted.
        let key = row("SELECT 'key_1'::text, 'cus_1'::text, 'ab'::varchar").await;
        let key: KeyRow = decode(&key, &columns(&key).unwrap()).unwrap();
        assert_eq!(
            (
                key.id.as_str(),
                key.customer_id.as_str(),
                key.key_hash.as_str()
            ),
            ("key_1", "cus_1", "ab")
        );
        assert_eq!(
            (key.expires_at, key.cap, key.cap_period),
            (None, None, None)
        );

        let item = row(
            "SELECT 'si_1'::text, 'cus_1'::text, 'active'::text, true, NULL::int8, \
                    NULL::int8, 5::int8, 10::int8, 20::int4, 'price_1'::text, 3::int8",
        )
        .await;
        let item: ItemRow = decode(&item, &columns(&item).unwrap()).unwrap();
        assert!(item.cancel_at_period_end);
        assert_eq!(
            (
                item.canceled_at,
                item.past_due_since,
                item.current_period_end
            ),
            (None, Some(5), 20)
        );
        assert_eq!((item.price_id.as_str(), item.created), ("price_1", 3));

        // A null where the row needs a value, too few columns, text for a number: each an
        // error, not a made-up value.
        let nulls = row("SELECT NULL::int8 AS quota, NULL::text AS note").await;
        let nulls_columns = columns(&nulls).unwrap();
        let error = decode::<(i64, Option<String>)>(&nulls, &nulls_columns).unwrap_err();
        assert!(error.to_string().starts_with("column quota: "), "{error}");
        assert_eq!(
            decode::<(Option<i64>, Option<String>)>(&nulls, &nulls_columns).unwrap(),
            (None, None)
        );
        assert!(decode::<(Option<i64>, Option<String>, i64)>(&nulls, &nulls_columns).is_err());
        let text = row("SELECT 'seven'::text").await;
        assert!(decode::<(i64,)>(&text, &columns(&text).unwrap()).is_err());

        // A type the ledger does not store is named, not guessed at.
        let real = row("SELECT 1.5::float8 AS ratio").await;
        let error = columns(&real).unwrap_err().to_string();
        assert!(
            error.contains("ratio") && error.contains("FLOAT8"),
            "{error}"
        );
    }
}
