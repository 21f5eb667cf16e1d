//! Offline registry changes: what a package asks of an image's hives (set or delete a value,
//! delete or create a key, or a whole `.reg` file), and applying them to a hive file with
//! hivex, the library libguestfs and virt-v2v write hives with.
//!
//! [`parse_reg`] turns a `.reg` file into [`RegistryOp`]s; [`apply`] applies one hive's ops to
//! a copy of the hive file, reads the copy back and only then keeps it. A hive is untrusted
//! input: its base block is checked before hivex sees it, and a hive with pending transaction
//! logs is refused rather than changed (Windows would replay the logs over the change).

mod base_block;
mod edit;
#[cfg(unix)]
mod hivex;
// No mingw build of libhivex exists in Debian: Windows builds of ois edit no hives.
#[cfg(windows)]
#[path = "hivex_unavailable.rs"]
mod hivex;
mod names;
mod reg_file;
mod value;
mod verify;

pub(crate) use base_block::checksum_holds;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use edit::apply;
pub use reg_file::{parse_reg, MAX_REG_FILE_BYTES};
pub use value::{ValueData, MAX_VALUE_BYTES};

/// The hives an offline image has, and where each lives in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Hive {
    Software,
    System,
    Default,
    Sam,
    Security,
    Components,
    Ntuser,
}

impl Hive {
    pub const ALL: [Hive; 7] = [
        Hive::Software,
        Hive::System,
        Hive::Default,
        Hive::Sam,
        Hive::Security,
        Hive::Components,
        Hive::Ntuser,
    ];

    /// Case-insensitive: SOFTWARE, SYSTEM, DEFAULT, SAM, SECURITY, COMPONENTS or NTUSER.
    pub fn parse(s: &str) -> Option<Hive> {
        Hive::ALL
            .into_iter()
            .find(|hive| hive.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Hive::Software => "SOFTWARE",
            Hive::System => "SYSTEM",
            Hive::Default => "DEFAULT",
            Hive::Sam => "SAM",
            Hive::Security => "SECURITY",
            Hive::Components => "COMPONENTS",
            Hive::Ntuser => "NTUSER",
        }
    }

    /// The hive file's path inside an index (`/`-separated, as wimlib names files).
    pub fn image_path(self) -> &'static str {
        match self {
            Hive::Software => "Windows/System32/config/SOFTWARE",
            Hive::System => "Windows/System32/config/SYSTEM",
            Hive::Default => "Windows/System32/config/DEFAULT",
            Hive::Sam => "Windows/System32/config/SAM",
            Hive::Security => "Windows/System32/config/SECURITY",
            Hive::Components => "Windows/System32/config/COMPONENTS",
            // The default user's profile: new accounts are made from it, so its NTUSER.DAT
            // is where HKEY_CURRENT_USER settings for every future user go.
            Hive::Ntuser => "Users/Default/NTUSER.DAT",
        }
    }
}

impl std::fmt::Display for Hive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to a hive, as a package declares it (in manifest order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RegistryOp {
    /// Creates missing keys on the way; `name` "" is the key's default value.
    SetValue {
        hive: Hive,
        key: String,
        name: String,
        value: ValueData,
    },
    DeleteValue {
        hive: Hive,
        key: String,
        name: String,
    },
    /// The key with everything under it.
    DeleteKey { hive: Hive, key: String },
    /// A `.reg` section with no values still creates its key.
    CreateKey { hive: Hive, key: String },
}

impl RegistryOp {
    pub fn hive(&self) -> Hive {
        match self {
            RegistryOp::SetValue { hive, .. }
            | RegistryOp::DeleteValue { hive, .. }
            | RegistryOp::DeleteKey { hive, .. }
            | RegistryOp::CreateKey { hive, .. } => *hive,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            RegistryOp::SetValue { key, .. }
            | RegistryOp::DeleteValue { key, .. }
            | RegistryOp::DeleteKey { key, .. }
            | RegistryOp::CreateKey { key, .. } => key,
        }
    }

    /// The value name for value ops, None for key ops.
    pub fn value_name(&self) -> Option<&str> {
        match self {
            RegistryOp::SetValue { name, .. } | RegistryOp::DeleteValue { name, .. } => Some(name),
            RegistryOp::DeleteKey { .. } | RegistryOp::CreateKey { .. } => None,
        }
    }
}

/// What one op did, for the run's record and report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub hive: Hive,
    /// The key as written: for SYSTEM, `CurrentControlSet\…` names the control set it went to.
    pub key: String,
    /// The value name ("" for the default value), None for key ops.
    pub value: Option<String>,
    /// "set", "deleted value", "deleted key", "created key", "unchanged" (the value already
    /// had that type and data, or the key already existed) or "absent" (a delete of something
    /// not there).
    pub action: String,
    /// [`ValueData::display`] of the value before, when there was one.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Windows' limit on a key name (one path component), in UTF-16 code units.
pub const MAX_KEY_NAME_CHARS: usize = 255;
/// Windows' limit on a value name, in UTF-16 code units.
pub const MAX_VALUE_NAME_CHARS: usize = 16383;

/// Checks a key path (relative to the hive root, `\`-separated): not empty, no leading or
/// trailing `\`, no empty, `.` or `..` component, each name at most 255 characters, no NUL.
/// The error is the reason.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key path is empty (the root of a hive cannot be changed as a key)".into());
    }
    if key.starts_with('\\') {
        return Err(format!(
            "the key path {key:?} starts with \\: write it from the hive's root without one"
        ));
    }
    if key.ends_with('\\') {
        return Err(format!("the key path {key:?} ends with \\"));
    }
    if key.contains('\0') {
        return Err(format!("the key path {key:?} contains a NUL character"));
    }
    for name in key.split('\\') {
        match name {
            "" => return Err(format!("the key path {key:?} has an empty name (\\\\)")),
            "." | ".." => {
                return Err(format!(
                    "the key path {key:?} has a {name:?} component: registry paths have no relative names"
                ))
            }
            _ => {}
        }
        let chars = name.encode_utf16().count();
        if chars > MAX_KEY_NAME_CHARS {
            return Err(format!(
                "the key name {}… in {key:?} is {chars} characters, over Windows' {MAX_KEY_NAME_CHARS}",
                name.chars().take(32).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Checks a value name ("" is the default value): no NUL, at most 16,383 characters. The error
/// is the reason.
pub fn validate_value_name(name: &str) -> Result<(), String> {
    if name.contains('\0') {
        return Err(format!("the value name {name:?} contains a NUL character"));
    }
    let chars = name.encode_utf16().count();
    if chars > MAX_VALUE_NAME_CHARS {
        return Err(format!(
            "the value name {}… is {chars} characters, over Windows' {MAX_VALUE_NAME_CHARS}",
            name.chars().take(32).collect::<String>()
        ));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{origin}, line {line}: {problem}. Correct the .reg file (regedit on Windows exports this format) and import the package again")]
    RegFile {
        origin: String,
        line: usize,
        problem: String,
    },
    #[error("{origin} is not a .reg file ois can read: {problem}")]
    RegFileEncoding { origin: String, problem: String },
    #[error("{origin} is {size} bytes, over the {} MiB ois reads of a .reg file: split it into smaller files", limit >> 20)]
    RegFileTooLarge {
        origin: String,
        size: u64,
        limit: u64,
    },
    #[error("{origin}: the change to {target} is not valid: {reason}")]
    InvalidOp {
        origin: String,
        target: String,
        reason: String,
    },
    #[error("{origin} is {size} bytes, over the {} MiB ois changes of a hive (real ones are well under): it was not changed", limit >> 20)]
    HiveTooLarge {
        origin: String,
        size: u64,
        limit: u64,
    },
    #[error("{origin} was not cleanly unloaded (its base block's sequence numbers {primary} and {secondary} differ): the image was captured from a running system, or the hive's transaction logs (.LOG1/.LOG2) hold changes not yet in it, which Windows would replay over any change ois made. The update is refused and the hive was not changed: load and unload the hive once on Windows (reg load / reg unload) to apply its logs, or capture the image again from a cleanly shut down system")]
    NotCleanlyUnloaded {
        origin: String,
        primary: u32,
        secondary: u32,
    },
    #[error("{origin} is not a readable registry hive: {detail}. The hive was not changed: the image's registry is damaged or this is not a hive file; capture the image again from a sound system")]
    Damaged { origin: String, detail: String },
    #[error("{origin}: {target} cannot be changed safely: {reason}. The update is refused and the hive was not changed")]
    Unsupported {
        origin: String,
        target: String,
        reason: String,
    },
    #[error("{origin}: hivex could not {doing}: {source}. The hive was not changed")]
    Hivex {
        origin: String,
        doing: String,
        source: std::io::Error,
    },
    #[error("{origin}: the changed hive did not read back as written: {detail}. It was not kept; this is a defect in ois or hivex, please report it with the package")]
    ReadBack { origin: String, detail: String },
    #[error("{origin}: cannot {doing} {}: {source}", path.display())]
    Io {
        origin: String,
        doing: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_names_parse_either_case_and_name_their_files() {
        assert_eq!(Hive::parse("software"), Some(Hive::Software));
        assert_eq!(Hive::parse("NTUSER"), Some(Hive::Ntuser));
        assert_eq!(Hive::parse("Components"), Some(Hive::Components));
        assert_eq!(Hive::parse("HKLM"), None);
        assert_eq!(Hive::parse(""), None);
        for hive in Hive::ALL {
            assert_eq!(Hive::parse(hive.as_str()), Some(hive));
        }
        assert_eq!(Hive::System.image_path(), "Windows/System32/config/SYSTEM");
        assert_eq!(Hive::Ntuser.image_path(), "Users/Default/NTUSER.DAT");
        assert_eq!(
            serde_json::to_string(&Hive::Security).expect("json"),
            "\"SECURITY\""
        );
    }

    #[test]
    fn key_paths_are_checked_for_what_windows_refuses() {
        assert_eq!(
            validate_key(r"Policies\Microsoft\Windows\WindowsUpdate\AU"),
            Ok(())
        );
        assert_eq!(validate_key("a/b.c"), Ok(()), "/ and . are legal in names");
        for (key, reason) in [
            ("", "empty"),
            (r"\Policies", "starts with \\"),
            (r"Policies\", "ends with \\"),
            (r"Policies\\AU", "empty name"),
            (r"Policies\..\SAM", "\"..\" component"),
            (r".\Policies", "\".\" component"),
            ("Poli\0cies", "NUL"),
        ] {
            let err = validate_key(key).expect_err(key);
            assert!(err.contains(reason), "{key:?}: {err}");
        }
        let long = "k".repeat(256);
        let err = validate_key(&format!(r"Software\{long}")).expect_err("too long");
        assert!(err.contains("256 characters, over Windows' 255"), "{err}");
        assert_eq!(validate_key(&"k".repeat(255)), Ok(()));
    }

    #[test]
    fn value_names_may_be_empty_but_not_hold_nul_or_run_over_the_limit() {
        assert_eq!(validate_value_name(""), Ok(()));
        assert_eq!(validate_value_name(r"a\b"), Ok(()));
        assert!(validate_value_name("a\0").is_err());
        assert!(validate_value_name(&"v".repeat(16384)).is_err());
    }

    #[test]
    fn ops_serialize_with_their_action_and_typed_value() {
        let op = RegistryOp::SetValue {
            hive: Hive::Software,
            key: r"Policies\X".into(),
            name: "N".into(),
            value: ValueData::Dword(1),
        };
        let json = serde_json::to_value(&op).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"action": "set_value", "hive": "SOFTWARE", "key": "Policies\\X",
                "name": "N", "value": {"type": "dword", "data": 1}})
        );
        let back: RegistryOp = serde_json::from_value(json).expect("back");
        assert_eq!(back, op);
        assert_eq!(op.hive(), Hive::Software);
        assert_eq!(op.key(), r"Policies\X");
    }
}
