//! Keys and hashes as SQLite values: raw BLOBs of their exact size, so that
//! queries bind and read them directly. A stored value of another size (the
//! schema's CHECK constraints forbid it) reads as an error, never a panic.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::crypto::{EddsaPublicKey, EddsaSignature, HashCode, ShortHashCode};

macro_rules! blob_value {
    ($name:ident, $len:expr) => {
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let bytes = value.as_blob()?;
                <[u8; $len]>::try_from(bytes).map($name::from_bytes).map_err(|_| {
                    FromSqlError::InvalidBlobSize { expected_size: $len, blob_size: bytes.len() }
                })
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_bytes().as_slice()))
            }
        }
    };
}

blob_value!(EddsaPublicKey, 32);
blob_value!(EddsaSignature, 64);
blob_value!(HashCode, 64);
blob_value!(ShortHashCode, 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_wrong_sizes_are_errors() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let key = EddsaPublicKey::from_bytes([7; 32]);
        let back: EddsaPublicKey = conn.query_row("SELECT ?1", [key], |r| r.get(0)).unwrap();
        assert_eq!(back, key);
        let wrong: rusqlite::Result<HashCode> = conn.query_row("SELECT x'0102'", [], |r| r.get(0));
        assert!(wrong.is_err());
    }
}
