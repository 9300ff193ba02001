//! SQLite's side of a large read ([`super::sql::Tx::for_each_packed`]): the rows packed into
//! JSON arrays a chunk at a time, in the order of a key an index keeps, and decoded one row at a
//! time on the runtime's side.

use std::marker::PhantomData;

use anyhow::Context as _;
use serde::Deserializer as _;
use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;

use super::statement::{Arg, Kind, arguments};

/// How many rows SQLite packs into one value in [`Tx::for_each_packed`]: each chunk is one
/// hand-over between SQLite's thread and the runtime's, which wait for each other at every
/// one. At a million keys, 8,192 rows a chunk (about 1 MiB of JSON) loaded the ledger in
/// 0.8 of the time 1,024 took; 16,384 did no better (bench/results/2026-12-07-load.md).
pub const PACKED_ROWS: usize = 8192;

/// A read for [`Tx::for_each_packed`]: `SELECT` `columns` (each `expression` or
/// `expression AS name`, in the order of the row type's fields) `rest` (`FROM … WHERE …`, with
/// a `WHERE` and no `ORDER BY`: the rows come in no particular order), with `args` for its
/// `$1, $2, …`.
pub struct Packed<'a> {
    pub columns: &'a [&'a str],
    pub rest: &'a str,
    /// What orders the rows into chunks (SQLite): columns that tell every row of the read
    /// apart and that an index keeps in order (a table's `rowid`, its primary key).
    pub key: &'a [&'a str],
    pub args: Vec<Arg>,
}

impl Packed<'_> {
    /// The read as one plain `SELECT`, every row at once.
    pub fn select(&self) -> String {
        format!("SELECT {} {}", self.columns.join(", "), self.rest)
    }

    /// One chunk's statement: the first rows in the key's order (after the key bound last,
    /// for the `next` ones) as a JSON array of arrays, and the last row's key as a JSON array
    /// (`NULL` when no row is left). The chunk is read once and both taken from it.
    pub(super) fn sqlite_chunk(&self, next: bool) -> String {
        let keys: Vec<String> = (0..self.key.len()).map(|i| format!("k{i}")).collect();
        let values: Vec<String> = (0..self.columns.len()).map(|i| format!("c{i}")).collect();
        let aliased = |list: &[&str], prefix: &str| -> Vec<String> {
            list.iter()
                .enumerate()
                .map(|(i, column)| {
                    let expression = column.split_once(" AS ").map_or(*column, |(e, _)| e);
                    format!("{expression} AS {prefix}{i}")
                })
                .collect()
        };
        let mut selected = aliased(self.key, "k");
        selected.extend(aliased(self.columns, "c"));
        let order = self.key.join(", ");
        let after = match next {
            false => String::new(),
            true => {
                let bound: Vec<String> = (0..self.key.len())
                    .map(|i| format!("${}", self.args.len() + 1 + i))
                    .collect();
                format!(" AND ({order}) > ({})", bound.join(", "))
            }
        };
        let chunk = format!(
            "SELECT {} {}{after} ORDER BY {order} LIMIT {PACKED_ROWS}",
            selected.join(", "),
            self.rest
        );
        let rows = format!("json_group_array(json_array({}))", values.join(", "));
        if let [_] = self.key {
            // One key column: its largest is the last row's, read in the same pass.
            return format!(
                "SELECT {rows}, CASE WHEN count(*) > 0 THEN json_array(max(k0)) END \
                 FROM ({chunk})"
            );
        }
        let descending: Vec<String> = keys.iter().map(|k| format!("{k} DESC")).collect();
        format!(
            "WITH chunk AS MATERIALIZED ({chunk}) \
             SELECT (SELECT {rows} FROM chunk), \
                    (SELECT json_array({}) FROM chunk ORDER BY {} LIMIT 1)",
            keys.join(", "),
            descending.join(", "),
        )
    }
}

/// The page cache of a connection lent to a packed read, which closes after it: the read
/// passes over each page once, and the default cache's two megabytes, freed when the
/// connection closed, were kept by the allocator (20 bytes a key at 100,000 keys).
const WHOLE_READ_CACHE: &str = "PRAGMA cache_size = -256";

/// A packed read's statements: the first chunk's, the next ones' (after the last key), and
/// the parameters both start with.
pub(super) struct Chunks {
    pub(super) first: sqlx::SqlStr,
    pub(super) next: sqlx::SqlStr,
    pub(super) fixed: Vec<Arg>,
}

impl Chunks {
    /// Sends each chunk's array to `sender` in turn, until none is left or nobody listens.
    pub(super) async fn read(
        self,
        conn: &mut PoolConnection<Sqlite>,
        sender: tokio::sync::mpsc::Sender<String>,
    ) -> anyhow::Result<()> {
        sqlx::query(WHOLE_READ_CACHE).execute(&mut **conn).await?;
        let mut after: Option<Vec<Arg>> = None;
        loop {
            let mut args = self.fixed.clone();
            let text = match after {
                None => self.first.clone(),
                Some(last) => {
                    args.extend(last);
                    self.next.clone()
                }
            };
            let (array, last): (String, Option<String>) =
                sqlx::query_as_with(text, arguments::<Sqlite>(args)?)
                    .fetch_one(&mut **conn)
                    .await?;
            let Some(last) = last else {
                return Ok(());
            };
            after = Some(key_args(&last)?);
            if sender.send(array).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// The arguments that bind a key read back as a JSON array of integers and text.
fn key_args(key: &str) -> anyhow::Result<Vec<Arg>> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(key).context("Failed to read a packed chunk's last key")?;
    values
        .iter()
        .map(|value| {
            // A key is never empty: an empty one would read the same chunk again.
            let arg = match value.is_null() {
                true => None,
                false => Arg::from_json(Kind::Int, value).or(Arg::from_json(Kind::Text, value)),
            };
            arg.context("A packed chunk's key is neither an integer nor text")
        })
        .collect()
}

/// Decodes a packed chunk (a JSON array of rows) and hands each row on as soon as it is
/// decoded, so that only one row's strings are alive at a time: decoding the whole chunk into
/// a vector first left a megabyte of freed small allocations per runtime thread, which the
/// allocator kept after the load.
pub(super) fn hand_on<T: DeserializeOwned>(
    array: &str,
    each: &mut impl FnMut(T),
) -> serde_json::Result<()> {
    struct Rows<'a, T, F>(&'a mut F, PhantomData<T>);

    impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for Rows<'_, T, F> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of rows")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut rows: A) -> Result<(), A::Error> {
            while let Some(row) = rows.next_element()? {
                (self.0)(row);
            }
            Ok(())
        }
    }

    let mut decoder = serde_json::Deserializer::from_str(array);
    decoder.deserialize_seq(Rows(each, PhantomData))?;
    decoder.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunks_rows_are_handed_on_in_order_and_a_bad_one_stops_the_read() {
        let mut rows: Vec<(i64, String)> = Vec::new();
        hand_on(r#"[[1,"a"],[2,"b\"c"]]"#, &mut |row| rows.push(row)).unwrap();
        assert_eq!(rows, [(1, "a".into()), (2, "b\"c".into())]);

        let mut rows: Vec<(i64, String)> = Vec::new();
        assert!(hand_on(r#"[[1,"a"],[2]]"#, &mut |row| rows.push(row)).is_err());
        assert!(hand_on(r#"[[1,"a"]] [[2,"b"]]"#, &mut |row| rows.push(row)).is_err());
        assert!(hand_on(r#"{"a":1}"#, &mut |row| rows.push(row)).is_err());
    }
}
