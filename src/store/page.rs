//! A page of a listing: Taler's pagination (`limit` rows, negative for newest
//! first, starting after the row id `offset`) as the store runs it.

/// Most rows one page returns.
pub const MAX_PAGE: i64 = 1000;

/// A resolved page.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Rows to return, positive.
    pub limit: i64,
    pub descending: bool,
    /// Exclusive row id bound.
    pub start: i64,
}

impl Page {
    /// The first page of at most `limit` rows, oldest first.
    pub fn first(limit: i64) -> Page {
        Page { limit: limit.clamp(1, MAX_PAGE), descending: false, start: 0 }
    }

    /// The page after the one that ended at row id `last`.
    pub fn after(self, last: i64) -> Page {
        Page { start: last, ..self }
    }

    /// The SQL condition on `column` against the bound parameter `param`.
    /// Only two texts per column come out of this, so the statement cache
    /// keeps both.
    pub(in crate::store) fn condition(&self, column: &str, param: &str) -> String {
        if self.descending { format!("{column} < {param}") } else { format!("{column} > {param}") }
    }

    pub(in crate::store) fn order(&self) -> &'static str {
        if self.descending { "DESC" } else { "ASC" }
    }
}
