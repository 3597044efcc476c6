//! The two handles through which SQL runs: [`Db`] for reads and [`WriteTx`]
//! for the writer thread's jobs.
//!
//! Both are only usable from inside `crate::store`: the API layer composes the
//! typed functions of the store's modules and never sees SQL or a raw
//! connection. Every statement goes through SQLite's statement cache (parsing
//! each statement anew was a visible share of the writer's time under load),
//! and a [`WriteTx`] refuses transaction control and pragmas: the writer thread
//! owns the transaction, its savepoints and the connection's settings, so a
//! job cannot commit, release or change durability behind its back.

use rusqlite::{OptionalExtension, Params, Row};

use super::StoreError;

/// Read access to the database (a pooled read-only connection, or the
/// writer's connection inside a job).
pub struct Db<'c> {
    conn: &'c rusqlite::Connection,
}

impl<'c> Db<'c> {
    pub(super) fn new(conn: &'c rusqlite::Connection) -> Db<'c> {
        Db { conn }
    }

    /// At most one row.
    pub(in crate::store) fn query_optional<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.conn.prepare_cached(sql)?.query_row(params, map).optional()?)
    }

    /// Exactly one row.
    #[cfg(test)]
    pub(in crate::store) fn query_one<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        Ok(self.conn.prepare_cached(sql)?.query_row(params, map)?)
    }

    /// Every row, mapped.
    pub(in crate::store) fn query_all<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, map)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// A writer job's view of the open write transaction: reads and data changes,
/// nothing else.
pub struct WriteTx<'c> {
    db: Db<'c>,
}

/// Statements a job may not run: the writer owns the transaction and the
/// connection's settings.
const FORBIDDEN: &[&str] =
    &["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA", "ATTACH", "DETACH", "VACUUM"];

fn first_keyword(sql: &str) -> &str {
    let sql = sql.trim_start();
    let end = sql.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(sql.len());
    &sql[..end]
}

impl<'c> WriteTx<'c> {
    pub(super) fn new(conn: &'c rusqlite::Connection) -> WriteTx<'c> {
        WriteTx { db: Db::new(conn) }
    }

    /// Runs a data change; returns the rows it changed.
    pub(in crate::store) fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, StoreError> {
        let keyword = first_keyword(sql);
        if FORBIDDEN.iter().any(|k| k.eq_ignore_ascii_case(keyword)) {
            return Err(StoreError::Invariant(format!("a write job may not run {keyword}")));
        }
        Ok(self.db.conn.prepare_cached(sql)?.execute(params)?)
    }

    /// Gives at most `pages` free pages back to the file system (`PRAGMA
    /// incremental_vacuum`, which moves pages from the file's end into free ones and
    /// shortens the file); returns the pages given back and the free pages left.
    /// Store-internal: only [`super::space`] runs it, in bounded steps.
    pub(in crate::store) fn incremental_vacuum(&self, pages: u32) -> Result<(i64, i64), StoreError> {
        let free =
            |conn: &rusqlite::Connection| conn.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0));
        let before = free(self.db.conn)?;
        // Each step of the statement frees one page (it yields an empty row per page):
        // stepped to its end, not run once as a batch would.
        let mut stmt = self.db.conn.prepare_cached(&format!("PRAGMA incremental_vacuum({pages})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        let left = free(self.db.conn)?;
        Ok((before - left, left))
    }

    /// The rowid of the last row this connection inserted.
    pub(in crate::store) fn last_insert_rowid(&self) -> i64 {
        self.db.conn.last_insert_rowid()
    }
}

impl<'c> std::ops::Deref for WriteTx<'c> {
    type Target = Db<'c>;

    fn deref(&self) -> &Db<'c> {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_cannot_control_the_transaction() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x); BEGIN").unwrap();
        let tx = WriteTx::new(&conn);
        for sql in
            ["COMMIT", "  commit", "END TRANSACTION", "RELEASE job", "PRAGMA synchronous=OFF", "rollback"]
        {
            assert!(tx.execute(sql, []).is_err(), "{sql}");
        }
        assert_eq!(tx.execute("INSERT INTO t(x) VALUES (1)", []).unwrap(), 1);
        assert!(!conn.is_autocommit());
    }
}
