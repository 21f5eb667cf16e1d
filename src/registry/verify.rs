//! What a hive must hold after its ops, and the check of a written hive against it.
//!
//! Later ops win over earlier ones: a key deleted and then set again exists, a value set and
//! then deleted is gone. Names compare as Windows compares them (ignoring case).

use std::collections::BTreeMap;
use std::path::Path;

use super::edit::target;
use super::hivex::{names_equal, upcase, Hivex};
use super::value::ValueData;
use super::{Hive, RegistryError, RegistryOp};

#[derive(Default)]
pub struct Expected {
    hive: Option<Hive>,
    /// By upper-cased path: the path as written, and whether the key must exist.
    keys: BTreeMap<String, (String, bool)>,
    /// By upper-cased path and name.
    values: BTreeMap<(String, String), ExpectedValue>,
}

struct ExpectedValue {
    /// The path and name as written.
    key: String,
    name: String,
    /// The type and data the value must have; None: it must be gone.
    data: Option<(u32, Vec<u8>)>,
}

fn fold(s: &str) -> String {
    s.chars().map(upcase).collect()
}

impl Expected {
    /// Records `op`, applied to `key` (the op's key after CurrentControlSet is resolved).
    pub fn record(&mut self, op: &RegistryOp, key: &str) {
        self.hive = Some(op.hive());
        match op {
            RegistryOp::SetValue { name, value, .. } => {
                self.exists(key);
                self.values.insert(
                    (fold(key), fold(name)),
                    ExpectedValue {
                        key: key.to_string(),
                        name: name.clone(),
                        data: Some(value.to_raw()),
                    },
                );
            }
            RegistryOp::DeleteValue { name, .. } => {
                self.values.insert(
                    (fold(key), fold(name)),
                    ExpectedValue {
                        key: key.to_string(),
                        name: name.clone(),
                        data: None,
                    },
                );
            }
            RegistryOp::DeleteKey { .. } => {
                let folded = fold(key);
                let under = format!("{folded}\\");
                let inside = |k: &String| *k == folded || k.starts_with(&under);
                self.keys.retain(|k, _| !inside(k));
                self.values.retain(|(k, _), _| !inside(k));
                self.keys.insert(folded, (key.to_string(), false));
            }
            RegistryOp::CreateKey { .. } => self.exists(key),
        }
    }

    /// The key and every key above it exist.
    fn exists(&mut self, key: &str) {
        let mut end = 0;
        for name in key.split('\\') {
            end += name.len();
            let path = &key[..end];
            self.keys.insert(fold(path), (path.to_string(), true));
            end += 1;
        }
    }

    /// Opens the written hive with hivex (which walks all its hive bins again) and checks it
    /// holds what the ops made.
    pub fn check(&self, path: &Path, origin: &str) -> Result<(), RegistryError> {
        let fail = |detail: String| RegistryError::ReadBack {
            origin: origin.to_string(),
            detail,
        };
        let hive = self.hive.unwrap_or(Hive::Software);
        let h = Hivex::open(path, false)
            .map_err(|e| fail(format!("hivex cannot open it again: {e}")))?;
        let read = |what: &str, e: std::io::Error| fail(format!("reading {what}: {e}"));
        for (key, must_exist) in self.keys.values() {
            let found = h.find(key).map_err(|e| read(&target(hive, key, None), e))?;
            match (found.is_some(), *must_exist) {
                (false, true) => {
                    return Err(fail(format!("{} is missing", target(hive, key, None))))
                }
                (true, false) => {
                    return Err(fail(format!("{} is still there", target(hive, key, None))))
                }
                _ => {}
            }
        }
        for ExpectedValue {
            key,
            name,
            data: want,
        } in self.values.values()
        {
            let shown = target(hive, key, Some(name));
            let node = h.find(key).map_err(|e| read(&shown, e))?;
            let stored = match node {
                Some(node) => h
                    .stored_values(node)
                    .map_err(|e| read(&shown, e))?
                    .into_iter()
                    .find(|v| names_equal(&v.name, name)),
                None => None,
            };
            match (stored, want) {
                (None, None) => {}
                (Some(_), None) => return Err(fail(format!("{shown} is still there"))),
                (None, Some(_)) => return Err(fail(format!("{shown} is missing"))),
                (Some(got), Some((kind, bytes))) => {
                    if got.kind != *kind || got.bytes != *bytes {
                        return Err(fail(format!(
                            "{shown} reads back as {}, not {}",
                            ValueData::from_raw(got.kind, &got.bytes).display(),
                            ValueData::from_raw(*kind, bytes).display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, name: &str, n: u32) -> RegistryOp {
        RegistryOp::SetValue {
            hive: Hive::Software,
            key: key.into(),
            name: name.into(),
            value: ValueData::Dword(n),
        }
    }

    #[test]
    fn later_ops_win_and_deleting_a_key_drops_what_was_expected_under_it() {
        let mut e = Expected::default();
        let delete = RegistryOp::DeleteKey {
            hive: Hive::Software,
            key: r"A\B".into(),
        };
        for op in [set(r"A\B\C", "x", 1), delete.clone(), set(r"a\b", "y", 2)] {
            e.record(&op, op.key());
        }
        let keys: Vec<(&str, bool)> = e.keys.values().map(|(k, b)| (k.as_str(), *b)).collect();
        // A\B was deleted (dropping A\B\C and its value), then made again by setting y.
        assert_eq!(keys, vec![("a", true), (r"a\b", true)]);
        let values: Vec<(&str, &str)> = e
            .values
            .values()
            .map(|v| (v.key.as_str(), v.name.as_str()))
            .collect();
        assert_eq!(values, vec![(r"a\b", "y")]);
    }
}
