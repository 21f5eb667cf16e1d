//! Applying one hive's ops to a copy of the hive file with hivex.

use std::path::Path;

use super::base_block;
use super::hivex::{names_equal, Hivex, Node, StoredValue};
use super::value::{ValueData, MAX_VALUE_BYTES, REG_DWORD};
use super::verify::Expected;
use super::{validate_key, validate_value_name, Applied, Hive, RegistryError, RegistryOp};

/// Applies `ops` (all for one hive) to the hive file `input`, writes the changed hive to
/// `output` (a new file; `input` is never modified), then reopens `output` and checks every
/// value set reads back with the type and bytes set, and every deleted value/key is gone; an
/// Err if not, and then no `output` is left. For the SYSTEM hive a key starting with
/// `CurrentControlSet\` goes to the control set `Select\Current` names (ControlSet001 when that
/// value is absent): offline hives have no CurrentControlSet. `origin` names the hive in
/// errors ("Windows/System32/config/SOFTWARE in index 2 of /x.wim"). A hive that is not a
/// hive, or is damaged, is an Err; so is one not cleanly unloaded (its two base-block sequence
/// numbers differ: pending .LOG1/.LOG2), which is never written.
pub fn apply(
    input: &Path,
    output: &Path,
    ops: &[RegistryOp],
    origin: &str,
) -> Result<Vec<Applied>, RegistryError> {
    let hive = check_ops(ops, origin)?;
    refuse_output_over_input(input, output, origin)?;
    base_block::check(input, origin)?;
    let hivex_error = |doing: &str| {
        let doing = doing.to_string();
        move |source| RegistryError::Hivex {
            origin: origin.to_string(),
            doing,
            source,
        }
    };
    let mut h = Hivex::open(input, true).map_err(|source| {
        // hivex walks every hive bin on open; what it refuses there is damage.
        RegistryError::Damaged {
            origin: origin.to_string(),
            detail: format!("hivex refused to open it: {source}"),
        }
    })?;
    let mut editor = Editor {
        h: &mut h,
        origin,
        pending: None,
    };
    let control_set = match hive {
        Some(Hive::System) if ops.iter().any(|op| current_control_set(op.key()).is_some()) => {
            Some(editor.current_control_set()?)
        }
        _ => None,
    };
    let mut applied = Vec::with_capacity(ops.len());
    let mut expected = Expected::default();
    for op in ops {
        let key = match (&control_set, current_control_set(op.key())) {
            (Some(set), Some(rest)) => format!("{set}{rest}"),
            _ => op.key().to_string(),
        };
        applied.push(editor.apply(op, &key)?);
        expected.record(op, &key);
    }
    editor.flush()?;

    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let io = |doing: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| RegistryError::Io {
            origin: origin.to_string(),
            doing,
            path,
            source,
        }
    };
    // Written beside `output` under another name, and renamed over it only once it reads
    // back right: an error at any point leaves no `output`.
    let written = tempfile::Builder::new()
        .prefix(".ois-hive-")
        .tempfile_in(dir)
        .map_err(io("create a file in", dir))?;
    h.commit(written.path())
        .map_err(hivex_error("write the changed hive"))?;
    drop(h);
    base_block::check(written.path(), origin).map_err(|e| RegistryError::ReadBack {
        origin: origin.to_string(),
        detail: e.to_string(),
    })?;
    expected.check(written.path(), origin)?;
    written
        .persist(output)
        .map_err(|e| io("write", output)(e.error))?;
    tracing::debug!(
        hive = origin,
        ops = ops.len(),
        changed = applied
            .iter()
            .filter(|a| a.action != "unchanged" && a.action != "absent")
            .count(),
        "registry changes written and read back"
    );
    Ok(applied)
}

/// The one hive all ops are for (None when there are none), every key and value name valid.
fn check_ops(ops: &[RegistryOp], origin: &str) -> Result<Option<Hive>, RegistryError> {
    let hive = ops.first().map(RegistryOp::hive);
    for op in ops {
        let invalid = |reason: String| RegistryError::InvalidOp {
            origin: origin.to_string(),
            target: target(op.hive(), op.key(), op.value_name()),
            reason,
        };
        if Some(op.hive()) != hive {
            return Err(invalid(format!(
                "the ops given are for more than one hive ({} and {}); apply each hive's ops to its own file",
                hive.map(Hive::as_str).unwrap_or(""),
                op.hive()
            )));
        }
        validate_key(op.key()).map_err(invalid)?;
        if let Some(name) = op.value_name() {
            validate_value_name(name).map_err(invalid)?;
        }
        if let RegistryOp::SetValue { value, .. } = op {
            value.check_size().map_err(invalid)?;
        }
    }
    Ok(hive)
}

/// hivex writes where it is told, so `output` naming `input` would change the original.
fn refuse_output_over_input(
    input: &Path,
    output: &Path,
    origin: &str,
) -> Result<(), RegistryError> {
    if crate::platform::same_file(input, output) {
        return Err(RegistryError::Io {
            origin: origin.to_string(),
            doing: "write the changed hive over its input",
            path: output.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the output is the input file; the input is never modified",
            ),
        });
    }
    Ok(())
}

/// What follows `CurrentControlSet` in a key (`""` or `\…`), if it starts with that name.
fn current_control_set(key: &str) -> Option<&str> {
    const NAME: &str = "CurrentControlSet";
    let head = key.get(..NAME.len())?;
    let rest = &key[NAME.len()..];
    (head.eq_ignore_ascii_case(NAME) && (rest.is_empty() || rest.starts_with('\\'))).then_some(rest)
}

/// `SOFTWARE\Policies\X`, or `SOFTWARE\Policies\X\Name` (`@` for the default value).
pub(super) fn target(hive: Hive, key: &str, value: Option<&str>) -> String {
    match value {
        None => format!("{hive}\\{key}"),
        Some("") => format!("{hive}\\{key}\\@"),
        Some(name) => format!("{hive}\\{key}\\{name}"),
    }
}

struct Editor<'a> {
    h: &'a mut Hivex,
    origin: &'a str,
    /// The values of the key the last value ops changed, not yet written.
    pending: Option<Pending>,
}

struct Pending {
    hive: Hive,
    key: String,
    node: Node,
    values: Vec<StoredValue>,
    changed: bool,
}

impl Editor<'_> {
    fn hivex_error(&self, doing: String) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
        move |source| RegistryError::Hivex {
            origin: self.origin.to_string(),
            doing,
            source,
        }
    }

    fn unsupported(&self, target: String, reason: String) -> RegistryError {
        RegistryError::Unsupported {
            origin: self.origin.to_string(),
            target,
            reason,
        }
    }

    fn apply(&mut self, op: &RegistryOp, key: &str) -> Result<Applied, RegistryError> {
        let hive = op.hive();
        let applied = |value: Option<&str>, action: &str, before, after| Applied {
            hive,
            key: key.to_string(),
            value: value.map(str::to_string),
            action: action.to_string(),
            before,
            after,
        };
        let same_key = self
            .pending
            .as_ref()
            .is_some_and(|p| op.value_name().is_some() && names_equal(&p.key, key));
        if !same_key {
            self.flush()?;
        }
        match op {
            RegistryOp::SetValue { name, value, .. } => {
                let node = match &self.pending {
                    Some(p) => p.node,
                    None => self.ensure_key(hive, key)?.0,
                };
                let values = self.pending_values(node, hive, key, name)?;
                let (kind, bytes) = value.to_raw();
                let after = Some(value.display());
                let existing = values.iter_mut().find(|v| names_equal(&v.name, name));
                let before = existing
                    .as_ref()
                    .map(|v| ValueData::from_raw(v.kind, &v.bytes).display());
                match existing {
                    Some(v) if v.kind == kind && v.bytes == bytes => {
                        return Ok(applied(Some(name), "unchanged", before, after));
                    }
                    // Windows keeps a value's name as first written when it is set again.
                    Some(v) => {
                        v.kind = kind;
                        v.bytes = bytes;
                    }
                    None => values.push(StoredValue {
                        name: name.clone(),
                        kind,
                        bytes,
                    }),
                }
                self.mark_changed();
                Ok(applied(Some(name), "set", before, after))
            }
            RegistryOp::DeleteValue { name, .. } => {
                let node = match &self.pending {
                    Some(p) => p.node,
                    None => match self.find_key(hive, key)? {
                        Some(node) => node,
                        None => return Ok(applied(Some(name), "absent", None, None)),
                    },
                };
                let values = self.pending_values(node, hive, key, name)?;
                let Some(at) = values.iter().position(|v| names_equal(&v.name, name)) else {
                    return Ok(applied(Some(name), "absent", None, None));
                };
                let old = values.remove(at);
                self.mark_changed();
                let before = Some(ValueData::from_raw(old.kind, &old.bytes).display());
                Ok(applied(Some(name), "deleted value", before, None))
            }
            RegistryOp::DeleteKey { .. } => {
                let Some(node) = self.find_key(hive, key)? else {
                    return Ok(applied(None, "absent", None, None));
                };
                self.h
                    .delete(node)
                    .map_err(self.hivex_error(format!("delete {}", target(hive, key, None))))?;
                Ok(applied(None, "deleted key", None, None))
            }
            RegistryOp::CreateKey { .. } => {
                let (_, created) = self.ensure_key(hive, key)?;
                let action = if created { "created key" } else { "unchanged" };
                Ok(applied(None, action, None, None))
            }
        }
    }

    /// The values of the key value ops are changing, read once for a run of ops on that key.
    fn pending_values(
        &mut self,
        node: Node,
        hive: Hive,
        key: &str,
        name: &str,
    ) -> Result<&mut Vec<StoredValue>, RegistryError> {
        let pending = match self.pending.take() {
            Some(pending) => pending,
            None => Pending {
                hive,
                key: key.to_string(),
                node,
                values: self.writable_values(node, hive, key, Some(name))?,
                changed: false,
            },
        };
        Ok(&mut self.pending.insert(pending).values)
    }

    fn mark_changed(&mut self) {
        if let Some(p) = &mut self.pending {
            p.changed = true;
        }
    }

    /// Writes the pending key's values, if a value op changed them. hivex writes all of a
    /// key's values again for any change and never reuses the cells it frees, so a run of
    /// value ops on one key (a .reg section) is written once, not once per value.
    fn flush(&mut self) -> Result<(), RegistryError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        if p.changed {
            self.h
                .set_values(p.node, &p.values)
                .map_err(self.hivex_error(format!(
                    "write the values of {}",
                    target(p.hive, &p.key, None)
                )))?;
        }
        Ok(())
    }

    fn find_key(&self, hive: Hive, key: &str) -> Result<Option<Node>, RegistryError> {
        self.h
            .find(key)
            .map_err(self.hivex_error(format!("look up {}", target(hive, key, None))))
    }

    /// The key, created with any missing parents; true when any was created.
    fn ensure_key(&mut self, hive: Hive, key: &str) -> Result<(Node, bool), RegistryError> {
        let mut node = self
            .h
            .root()
            .map_err(self.hivex_error("find the root key".into()))?;
        let mut created = false;
        for name in key.split('\\') {
            let found = self
                .h
                .child(node, name)
                .map_err(self.hivex_error(format!("look up {}", target(hive, key, None))))?;
            node = match found {
                Some(child) => child,
                None => {
                    if !name.is_ascii() {
                        // hivex hashes and sorts new subkey names by their UTF-8 bytes;
                        // Windows looks keys up by a hash of their UTF-16 upper case, and
                        // would not find a non-ASCII name hivex added.
                        return Err(self.unsupported(
                            target(hive, key, None),
                            format!(
                                "the key {name:?} does not exist and has non-ASCII characters, which hivex cannot add in the form Windows looks keys up by"
                            ),
                        ));
                    }
                    created = true;
                    self.h
                        .add_child(node, name)
                        .map_err(self.hivex_error(format!("add {}", target(hive, key, None))))?
                }
            };
        }
        Ok((node, created))
    }

    /// The key's values, to be rewritten whole (hivex changes one value only by writing all
    /// of a key's values again). Refused when one of them is larger than hivex can write back
    /// in the form Windows reads.
    fn writable_values(
        &self,
        node: Node,
        hive: Hive,
        key: &str,
        name: Option<&str>,
    ) -> Result<Vec<StoredValue>, RegistryError> {
        let doing = format!("read the values of {}", target(hive, key, None));
        let handles = self
            .h
            .values(node)
            .map_err(self.hivex_error(doing.clone()))?;
        for &value in &handles {
            let (_, len) = self
                .h
                .value_type(value)
                .map_err(self.hivex_error(doing.clone()))?;
            if len > MAX_VALUE_BYTES {
                let big = self
                    .h
                    .value_name(value)
                    .map_err(self.hivex_error(doing.clone()))?;
                return Err(self.unsupported(
                    target(hive, key, name),
                    format!(
                        "the key's value {big:?} holds {len} bytes, and hivex rewrites all of a key's values to change one, which would leave that value in a form Windows does not read (over {MAX_VALUE_BYTES} bytes needs a big-data record)"
                    ),
                ));
            }
        }
        self.h.stored_values(node).map_err(self.hivex_error(doing))
    }

    /// `ControlSet00n`, as `Select\Current` names it (1 when absent), which must exist.
    fn current_control_set(&self) -> Result<String, RegistryError> {
        let hive = Hive::System;
        let select = r"Select\Current";
        let mut current = 1;
        if let Some(node) = self.find_key(hive, "Select")? {
            let values = self
                .h
                .stored_values(node)
                .map_err(self.hivex_error(format!("read {}", target(hive, "Select", None))))?;
            if let Some(v) = values.iter().find(|v| names_equal(&v.name, "Current")) {
                current = match (v.kind, <[u8; 4]>::try_from(v.bytes.as_slice())) {
                    (REG_DWORD, Ok(b)) => u32::from_le_bytes(b),
                    _ => {
                        return Err(self.unsupported(
                            r"SYSTEM\CurrentControlSet".into(),
                            format!(
                                "{select} is {}, not a DWORD naming the control set",
                                ValueData::from_raw(v.kind, &v.bytes).display()
                            ),
                        ))
                    }
                };
            }
        }
        if !(1..=999).contains(&current) {
            return Err(self.unsupported(
                r"SYSTEM\CurrentControlSet".into(),
                format!("{select} is {current}, which names no control set (ControlSet001 to ControlSet999)"),
            ));
        }
        let set = format!("ControlSet{current:03}");
        if self.find_key(hive, &set)?.is_none() {
            return Err(self.unsupported(
                r"SYSTEM\CurrentControlSet".into(),
                format!("{select} names {set}, which this hive does not have"),
            ));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_control_set_is_recognised_as_a_whole_first_name() {
        assert_eq!(
            current_control_set(r"CurrentControlSet\Services"),
            Some(r"\Services")
        );
        assert_eq!(current_control_set("currentcontrolset"), Some(""));
        assert_eq!(current_control_set(r"CurrentControlSetX\Services"), None);
        assert_eq!(current_control_set(r"ControlSet001\Services"), None);
        assert_eq!(current_control_set("Current"), None);
    }

    #[test]
    fn ops_for_two_hives_or_with_bad_keys_are_refused_before_any_file_is_read() {
        let ops = [
            RegistryOp::CreateKey {
                hive: Hive::Software,
                key: "A".into(),
            },
            RegistryOp::CreateKey {
                hive: Hive::System,
                key: "A".into(),
            },
        ];
        let err = check_ops(&ops, "H").expect_err("two hives");
        assert!(
            err.to_string()
                .contains("more than one hive (SOFTWARE and SYSTEM)"),
            "{err}"
        );
        let ops = [RegistryOp::DeleteValue {
            hive: Hive::Software,
            key: r"A\..\B".into(),
            name: "x".into(),
        }];
        let err = check_ops(&ops, "H").expect_err("dots");
        assert!(
            err.to_string()
                .starts_with(r"H: the change to SOFTWARE\A\..\B\x is not valid"),
            "{err}"
        );
        assert_eq!(check_ops(&[], "H").expect("none"), None);
    }
}
