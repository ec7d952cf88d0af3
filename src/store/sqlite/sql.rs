//! SQL text with its arguments, for the few statements whose shape depends on a filter
//! (an `IN (…)` list, optional conditions). Every value goes in as an argument, never as text.

use rusqlite::types::Value;
use rusqlite::{Connection, Params, Row, params_from_iter};

/// Every row of a prepared (and cached) statement, each converted by `f`.
pub fn each<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut f: impl FnMut(&Row<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut q = conn.prepare_cached(sql)?;
    let mut rows = q.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

pub struct Sql {
    text: String,
    args: Vec<Value>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind(&mut self, v: impl Into<Value>) -> &mut Sql {
        self.text.push('?');
        self.args.push(v.into());
        self
    }

    /// Appends `?, ?, …`, one placeholder per value.
    pub fn list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Sql {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    pub fn execute(&self, conn: &Connection) -> rusqlite::Result<usize> {
        conn.prepare_cached(&self.text)?
            .execute(params_from_iter(self.args.iter()))
    }

    pub fn rows<T>(
        &self,
        conn: &Connection,
        f: impl FnMut(&Row<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        each(conn, &self.text, params_from_iter(self.args.iter()), f)
    }
}
