//! Typed ids: an image id cannot be passed where a run id is meant, and no id goes through a
//! string to be looked up again. Each id is defined by the module that owns its table.

/// Text that does not name an id of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {kind}")]
pub struct ParseIdError {
    pub kind: &'static str,
    pub text: String,
}

/// An integer row id of one table: transparent in JSON and in SQL, printed as the number.
macro_rules! integer_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::id::ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self).map_err(|_| $crate::id::ParseIdError {
                    kind: $kind,
                    text: s.to_string(),
                })
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                i64::column_result(value).map(Self)
            }
        }
    };
}

pub(crate) use integer_id;

#[cfg(test)]
mod tests {
    integer_id!(
        /// An id for the test.
        TestId,
        "a test id"
    );

    #[test]
    fn an_integer_id_is_its_number_in_json_sql_and_text() {
        let id: TestId = "42".parse().expect("id");
        assert_eq!(id, TestId::new(42));
        assert_eq!(id.get(), 42);
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&id).expect("json"), "42");
        assert_eq!(serde_json::from_str::<TestId>("42").expect("json"), id);
        let err = "golden".parse::<TestId>().expect_err("not a number");
        assert_eq!(err.to_string(), "\"golden\" is not a test id");
        let db = rusqlite::Connection::open_in_memory().expect("db");
        let back: TestId = db
            .query_row("SELECT ?1", [id], |r| r.get(0))
            .expect("round trip");
        assert_eq!(back, id);
    }
}
