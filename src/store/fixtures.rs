//! What `--fixtures` and `POST /private/reset` need beyond the statements they share
//! with the API: emptying every table, and remembering which incoming transfers the
//! fixtures made.
//!
//! Rule for incoming transfers (they have no key of their own): the k-th `[[incoming]]`
//! entry with a given amount, subject, debit and credit account is applied only while
//! fewer than k transfers with those fields *made by the fixtures* are recorded. Applying
//! a file again thus adds nothing, two identical entries still make two transfers, and a
//! transfer that arrived over HTTP never stands in for a fixture's.

use rusqlite::params;

use super::transfers::Incoming;
use super::{Db, StoreError, WriteTx};

/// Empties every table of the file ([`super::stats::tables`]), children before parents
/// (the reverse of their creation). Bodies still being staged by an upload in flight stay
/// (their chunks are written by other jobs; that upload then finds its third party gone and
/// is refused).
pub fn empty_tables(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    for table in super::stats::tables(tx)?.iter().rev() {
        let sql = match table.as_str() {
            "kyc_chunks" => {
                "DELETE FROM kyc_chunks WHERE content_id IN (SELECT content_id FROM kyc_contents WHERE h_body IS NOT NULL)".to_owned()
            }
            "kyc_contents" => "DELETE FROM kyc_contents WHERE h_body IS NOT NULL".to_owned(),
            other => format!("DELETE FROM \"{other}\""),
        };
        tx.execute(&sql, [])?;
    }
    Ok(())
}

/// How many transfers like `t` the fixtures have recorded.
pub fn fixture_transfers_like(db: &Db<'_>, t: &Incoming) -> Result<i64, StoreError> {
    Ok(db
        .query_optional(
            "SELECT count(*) FROM incoming_transfers i JOIN fixture_transfers f ON f.row_id = i.row_id
             WHERE i.amount = ?1 AND i.subject IS ?2 AND i.debit_account = ?3 AND i.credit_account = ?4",
            params![t.amount, t.subject, t.debit_account, t.credit_account],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// One row in every table of the file (for the tests that every table is reported, emptied and
/// counted: a table added without a line here fails them).
#[cfg(test)]
pub(super) fn fill_every_table(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    let key = [7u8; 32];
    for sql in [
        "INSERT INTO auditors VALUES (?1, 'https://a/', 'A', 1, 0, zeroblob(64))",
        "INSERT INTO extern_keys VALUES (?1, 'E', 1, 0)",
        "INSERT INTO kyc_contents VALUES (1, zeroblob(64), 1, 0)",
        "INSERT INTO kyc_chunks VALUES (1, 0, x'00')",
        "INSERT INTO kyc_uploads VALUES (1, 1, ?1, 'payto://x', zeroblob(32), zeroblob(64), 'application/pdf', 1, 0)",
        "INSERT INTO registrations (authorization_pub, account_pub, type, recurrent, credit_amount,
           credit_account, authorization_sig, response, created_us, last_change_us, expiration_s)
         VALUES (?1, ?1, 'reserve', 0, 'KUDOS:1', 'payto://x', zeroblob(64), '{}', 0, 0, 9)",
        "INSERT INTO incoming_transfers (row_id, date_us, amount, debit_account, credit_account, status,
           bounce_reason) VALUES (1, 0, 'KUDOS:1', 'payto://x', 'payto://y', 'bounced', 'r')",
        "INSERT INTO fixture_transfers VALUES (1)",
        "INSERT INTO outgoing_transfers (row_id, request_uid, wtid, date_us, amount, exchange_base_url,
           debit_account, credit_account) VALUES (2, zeroblob(64), zeroblob(32), 0, 'KUDOS:1',
           'https://x/', 'payto://y', 'payto://x')",
    ] {
        if sql.contains("?1") {
            tx.execute(sql, [&key[..]])?;
        } else {
            tx.execute(sql, [])?;
        }
    }
    Ok(())
}

/// Records that the fixtures made transfer `row_id`.
pub fn mark_fixture_transfer(tx: &WriteTx<'_>, row_id: i64) -> Result<(), StoreError> {
    tx.execute("INSERT INTO fixture_transfers (row_id) VALUES (?1)", [row_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenOptions, Store};

    #[test]
    fn emptying_leaves_no_table_with_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite3"), &OpenOptions::default()).unwrap();
        let tables: Vec<String> = store
            .write_blocking(move |tx| {
                fill_every_table(tx)?;
                // Every table of the file has a row: a table this test does not fill fails it
                // here, so a new table gets a line above and is proven emptied below.
                for table in crate::store::stats::tables(tx)? {
                    let rows: i64 =
                        tx.query_one(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                    assert!(rows > 0, "the test fills no row of {table}");
                }
                empty_tables(tx)?;
                tx.query_all(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert!(tables.len() >= 8, "{tables:?}");
        for table in tables {
            let rows: i64 = store
                .read_blocking(move |db| {
                    db.query_one(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                })
                .unwrap();
            assert_eq!(rows, 0);
        }
        store.close();
    }
}
