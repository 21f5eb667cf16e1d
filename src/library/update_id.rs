//! The id of an update in the content library (`updates.id`, or a Windows package's id).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::ParseIdError;

/// Ids compare without case, as the site database does (`COLLATE NOCASE`): `kb5031234` and
/// `KB5031234` are the same update.
#[derive(Debug, Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpdateId(String);

impl UpdateId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for UpdateId {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl std::hash::Hash for UpdateId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_ascii_lowercase().hash(state)
    }
}

impl fmt::Display for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UpdateId {
    fn from(s: &str) -> Self {
        UpdateId(s.to_string())
    }
}

impl std::str::FromStr for UpdateId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let id = s.trim();
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(ParseIdError {
                kind: "an update id",
                text: s.to_string(),
            });
        }
        Ok(UpdateId(id.to_string()))
    }
}

impl rusqlite::types::ToSql for UpdateId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for UpdateId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(value).map(UpdateId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_ids_compare_without_case_as_the_database_does() {
        let a: UpdateId = " kb5031234 ".parse().expect("id");
        assert_eq!(a, UpdateId::from("KB5031234"));
        assert_eq!(a.to_string(), "kb5031234");
        assert!("".parse::<UpdateId>().is_err());
    }
}
