//! Numbers about the database, for `/metrics`, `/healthz` and the row counts
//! that `backup` prints.

use super::{Db, Durability, Store, StoreError};

/// Every table of the file, in the order they were created (the schema's, then each
/// migration's): read from `sqlite_schema`, so that a table a migration adds is reported,
/// emptied and counted without a list to keep in step.
pub fn tables(db: &Db<'_>) -> Result<Vec<String>, StoreError> {
    db.query_all(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        [],
        |r| r.get(0),
    )
}

/// The cheapest statement that still takes a read transaction on the file.
pub fn ping(db: &Db<'_>) -> Result<(), StoreError> {
    db.query_optional("SELECT 1 FROM sqlite_schema LIMIT 1", [], |_| Ok(()))?;
    Ok(())
}

/// A job that changes nothing, lazily committed: proves that the writer
/// thread takes up jobs and commits, without costing an fsync.
pub async fn writer_round_trip(store: &Store) -> Result<(), StoreError> {
    store.write(Durability::Lazy, |_tx| Ok::<_, StoreError>(())).await
}

/// The database's size in pages times the page size: what it holds including
/// the committed part of the WAL, which the file's length on disk lags behind
/// until a checkpoint.
pub fn size_bytes(db: &Db<'_>) -> Result<u64, StoreError> {
    let bytes: Option<i64> = db.query_optional(
        "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s",
        [],
        |r| r.get(0),
    )?;
    Ok(bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(0))
}

/// Registrations that have not expired at `now_s` (a scan: the table has no
/// index on the expiration, and a scrape every few seconds can afford it).
pub fn live_registrations(db: &Db<'_>, now_s: i64) -> Result<u64, StoreError> {
    let n: Option<i64> =
        db.query_optional("SELECT count(*) FROM registrations WHERE expiration_s > ?1", [now_s], |r| {
            r.get(0)
        })?;
    Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

/// Rows per table of [`tables`].
pub fn row_counts(db: &Db<'_>) -> Result<Vec<(String, u64)>, StoreError> {
    tables(db)?
        .into_iter()
        .map(|table| {
            let n: Option<i64> =
                db.query_optional(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get(0))?;
            Ok((table, n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;

    #[test]
    fn counts_sizes_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite3"), &OpenOptions::default()).unwrap();
        let counts = store.read_blocking(row_counts).unwrap();
        // Every table (proven against `sqlite_schema` by the test below), in creation order.
        let names: Vec<&str> = counts.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names.first(), Some(&"auditors"));
        assert!(names.contains(&"fixture_transfers"), "{names:?}");
        assert!(counts.iter().all(|(_, n)| *n == 0));
        assert!(store.read_blocking(size_bytes).unwrap() >= 16384);
        assert_eq!(store.read_blocking(|db| live_registrations(db, 0)).unwrap(), 0);
        store.read_blocking(ping).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let commits =
            |s: &Store| s.writer_stats().unwrap().commits.load(std::sync::atomic::Ordering::Relaxed);
        let before = commits(&store);
        rt.block_on(writer_round_trip(&store)).unwrap();
        assert_eq!(commits(&store), before + 1);
        store.close();
    }

    #[test]
    fn tables_come_after_the_tables_they_reference() {
        // Emptying deletes in the reverse of this order: children before parents.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite3"), &OpenOptions::default()).unwrap();
        let tables = store.read_blocking(tables).unwrap();
        for (i, table) in tables.iter().enumerate() {
            let parents: Vec<String> = store
                .read_blocking({
                    let table = table.clone();
                    move |db| {
                        db.query_all("SELECT \"table\" FROM pragma_foreign_key_list(?1)", [table], |r| {
                            r.get(0)
                        })
                    }
                })
                .unwrap();
            for parent in parents {
                let at = tables.iter().position(|t| *t == parent).unwrap();
                assert!(at < i, "{table} references {parent}, created after it");
            }
        }
        store.close();
    }

    /// `backup`'s report, `reset`'s emptying and `check`'s counts cover every table of the file,
    /// whatever version it was made at: a file is made at each migration's version, opened (so
    /// migrated to the current one), given a row in every table, then backed up, checked and
    /// emptied. The tables expected are read from `sqlite_schema` here, not from [`tables`].
    #[test]
    fn backup_reset_and_check_cover_every_table_after_every_migration() {
        use crate::store::check::{self, CheckOptions, Finding, Observer};
        use crate::store::{APPLICATION_ID, MIGRATIONS, Migration, backup, fixtures};

        struct Quiet;
        impl Observer for Quiet {
            fn step(&mut self, _: &'static str) {}
            fn bodies(&mut self, _: u64) {}
            fn hashed(&mut self, _: u64) {}
            fn finding(&mut self, _: &Finding) {}
        }

        for (made_at, _) in MIGRATIONS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.sqlite3");
            {
                let conn = rusqlite::Connection::open(&path).unwrap();
                for (version, migration) in MIGRATIONS.iter().filter(|(v, _)| v <= made_at) {
                    match migration {
                        Migration::Sql(sql) => conn.execute_batch(sql).unwrap(),
                        Migration::IncrementalVacuum => {
                            conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM").unwrap()
                        }
                    }
                    conn.execute_batch(&format!(
                        "PRAGMA user_version={version}; PRAGMA application_id={APPLICATION_ID}"
                    ))
                    .unwrap();
                }
            }
            let store = Store::open(&path, &OpenOptions::default()).unwrap();
            store.write_blocking(fixtures::fill_every_table).unwrap();
            let schema: Vec<String> = store
                .read_blocking(|db| {
                    db.query_all(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                         ORDER BY name",
                        [],
                        |r| r.get("name"),
                    )
                })
                .unwrap();
            assert!(schema.iter().any(|t| t == "fixture_transfers"), "{schema:?}");
            let names = |rows: &[(String, u64)]| {
                let mut names: Vec<String> = rows.iter().map(|(t, _)| t.clone()).collect();
                names.sort();
                names
            };
            let filled = |what: &str, rows: &[(String, u64)]| {
                assert_eq!(names(rows), schema, "{what} (file made at version {made_at})");
                assert!(rows.iter().all(|(_, n)| *n > 0), "{what}: {rows:?}");
            };
            let report =
                backup::backup(&store, &dir.path().join("copy.sqlite3"), false, &[], &mut |_, _| {}).unwrap();
            filled("backup's report", &report.rows);
            let summary = check::check(
                &store,
                &CheckOptions {
                    short_subject_length: 12,
                    qr_reference_prefix: String::new(),
                    staged_max_age: std::time::Duration::from_secs(3600),
                    now_us: 0,
                },
                &mut Quiet,
            )
            .unwrap();
            filled("check's counts", &summary.rows);
            store.write_blocking(fixtures::empty_tables).unwrap();
            let after = store.read_blocking(row_counts).unwrap();
            assert_eq!(names(&after), schema);
            assert!(after.iter().all(|(_, n)| *n == 0), "reset left rows: {after:?}");
            store.close();
        }
    }
}
