//! A statement as plain data: its SQL text and the values of its `$1, $2, …`, bound to an
//! engine's own types only when it runs ([`super::sql`]).

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments as _, Database, Encode, FromRow, Type};

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Self::Bool(Some(v))
    }
}

impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Self::Bool(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Self::Text(Some(v.clone()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Self::Text(v.clone())
    }
}

/// The kinds of value the ledger stores, for reading columns without a row type (the export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bool,
}

impl Arg {
    /// A JSON value read as `kind` (`null` for none); `None` if it is of another kind.
    pub fn from_json(kind: Kind, value: &serde_json::Value) -> Option<Self> {
        let fits = value.is_null()
            || match kind {
                Kind::Int => value.is_i64(),
                Kind::Text => value.is_string(),
                Kind::Bool => value.is_boolean(),
            };
        fits.then(|| match kind {
            Kind::Int => Self::Int(value.as_i64()),
            Kind::Text => Self::Text(value.as_str().map(str::to_owned)),
            Kind::Bool => Self::Bool(value.as_bool()),
        })
    }
}

/// SQL text and the values of its `$1, $2, …` in order.
#[derive(Debug, Clone)]
pub struct Statement {
    pub(super) sql: sqlx::SqlStr,
    pub(super) args: Vec<Arg>,
}

/// A statement whose text is written in the code.
pub fn sql(text: &'static str) -> Statement {
    Statement {
        sql: sqlx::SqlStr::from_static(text),
        args: Vec::new(),
    }
}

impl Statement {
    /// A statement whose text is put together from the code's own fragments (table and
    /// column names, filters); values are always bound, never spliced.
    pub fn assembled(text: String) -> Self {
        use sqlx::SqlSafeStr as _;
        Self {
            sql: sqlx::AssertSqlSafe(text).into_sql_str(),
            args: Vec::new(),
        }
    }

    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }
}

/// A row type both engines can decode (a `#[derive(FromRow)]` struct, or a tuple).
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The engine's arguments for `args`.
pub(super) fn arguments<DB: Database>(args: Vec<Arg>) -> anyhow::Result<DB::Arguments>
where
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<bool>: Encode<'t, DB> + Type<DB>,
{
    let mut out = DB::Arguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
        }
        .map_err(|e| anyhow::anyhow!("Failed to bind a value: {e}"))?;
    }
    Ok(out)
}
