//! `update.toml`: the manifest of an update package, parsed and validated.

use serde::{Deserialize, Serialize};

use crate::registry::{self, Hive, RegistryOp, ValueData};

/// Largest manifest accepted; real ones are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    X86,
    X64,
    Arm64,
    Neutral,
}

impl Architecture {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "x86" => Some(Architecture::X86),
            "x64" | "amd64" => Some(Architecture::X64),
            "arm64" => Some(Architecture::Arm64),
            "neutral" => Some(Architecture::Neutral),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86 => "x86",
            Architecture::X64 => "x64",
            Architecture::Arm64 => "arm64",
            Architecture::Neutral => "neutral",
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which Windows an update is for: the installed OS (os-image and os-upgrade-package indexes),
/// the recovery environment nested in it (`Windows/System32/Recovery/Winre.wim`), or Windows
/// PE (the indexes of a boot image, boot.wim). The three are serviced with different packages
/// (Microsoft's Dynamic Update order: the OS takes the cumulative update, WinRE the Safe OS
/// update, WinPE its own cumulative update), so an update goes to one of them only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateTarget {
    #[default]
    Os,
    Winre,
    Winpe,
}

impl UpdateTarget {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "os" => Some(UpdateTarget::Os),
            "winre" => Some(UpdateTarget::Winre),
            "winpe" => Some(UpdateTarget::Winpe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateTarget::Os => "os",
            UpdateTarget::Winre => "winre",
            UpdateTarget::Winpe => "winpe",
        }
    }

    pub fn is_os(&self) -> bool {
        *self == UpdateTarget::Os
    }
}

impl std::fmt::Display for UpdateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    pub min_build: Option<u32>,
    pub max_build: Option<u32>,
    #[serde(default)]
    pub editions: Vec<String>,
}

/// One step of an update, applied in manifest order. Image paths are normalised: `/`
/// separators, no leading slash, no `.` or `..` components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// `source` is a file or directory of the package, relative to its root.
    Add {
        source: String,
        target: String,
    },
    Delete {
        path: String,
    },
    /// A rename onto an existing path fails unless `replace` (then the path is overwritten).
    Rename {
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "is_false")]
        replace: bool,
    },
}

// Absent from the stored form when false, so packages imported before `replace` existed keep
// their digest.
fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub title: String,
    pub classification: Option<String>,
    pub architecture: Architecture,
    pub supersedes: Vec<String>,
    pub requires: Vec<String>,
    pub applies_to: AppliesTo,
    /// Which Windows it is for. Absent from the stored form for `os`, so packages imported
    /// before targets existed keep their digest.
    #[serde(default, skip_serializing_if = "UpdateTarget::is_os")]
    pub target: UpdateTarget,
    pub changes: Vec<Change>,
    /// Registry changes, applied after the file changes, in manifest order. Absent from the
    /// stored form when empty, so packages imported before registry changes keep their digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry: Vec<RegistryEntry>,
}

/// One `[[registry]]` entry: a change, or a `.reg` file of the package whose changes the import
/// reads into `ops` (the stored manifest holds them; servicing never reads the file again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryEntry {
    Change(RegistryOp),
    Import {
        source: String,
        #[serde(default)]
        ops: Vec<RegistryOp>,
    },
}

impl Manifest {
    /// Every registry change, `.reg` imports expanded, in order.
    pub fn registry_ops(&self) -> impl Iterator<Item = &RegistryOp> {
        self.registry.iter().flat_map(|e| match e {
            RegistryEntry::Change(op) => std::slice::from_ref(op),
            RegistryEntry::Import { ops, .. } => ops.as_slice(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    hive: Option<String>,
    key: Option<String>,
    set: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<toml::Value>,
    delete_value: Option<String>,
    delete_key: Option<bool>,
    import: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    id: String,
    title: String,
    classification: Option<String>,
    architecture: String,
    #[serde(default)]
    supersedes: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
    applies_to: Option<AppliesTo>,
    target: Option<String>,
    #[serde(default, rename = "change")]
    changes: Vec<RawChange>,
    #[serde(default, rename = "registry")]
    registry: Vec<RawRegistry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    add: Option<String>,
    at: Option<String>,
    delete: Option<String>,
    rename: Option<String>,
    to: Option<String>,
    replace: Option<bool>,
}

/// Checks an update id: `[A-Za-z0-9._-]{1,64}`, and a name a file can have on Linux and on
/// Windows (see [`unfit_as_name`]).
pub fn valid_id(id: &str) -> bool {
    id_problem(id).is_none()
}

/// Why an id cannot be an update id, if it cannot.
fn id_problem(id: &str) -> Option<String> {
    let charset = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !charset {
        return Some(format!(
            "id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
        ));
    }
    unfit_as_name(id).map(|why| format!("id {id:?} {why}: the id names folders of the content library and of a run's stage; choose another id"))
}

/// Why a name cannot be one path part of the library or a stage, on Linux or on Windows: `.` and
/// `..` are not names, Windows reserves its device names with any extension in any case, and
/// drops a trailing dot or space.
fn unfit_as_name(name: &str) -> Option<&'static str> {
    const DEVICES: [&str; 4] = ["con", "prn", "aux", "nul"];
    if name == "." || name == ".." {
        return Some("is not a name");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("ends in a dot or a space, which Windows drops from names");
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or(name)
        .trim_end_matches(' ')
        .to_ascii_lowercase();
    let numbered = |prefix: &str| {
        stem.strip_prefix(prefix)
            .is_some_and(|n| n.len() == 1 && matches!(n.as_bytes()[0], b'1'..=b'9'))
    };
    if DEVICES.contains(&stem.as_str()) || numbered("com") || numbered("lpt") {
        return Some(
            "is a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with any extension)",
        );
    }
    None
}

/// Parses and validates a manifest. Every problem found is reported, one per line.
pub fn parse(text: &str) -> Result<Manifest, Vec<String>> {
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        vec![format!("update.toml line {line}: {}", e.message().trim())]
    })?;
    let mut problems = Vec::new();
    if let Some(problem) = id_problem(&raw.id) {
        problems.push(problem);
    }
    if raw.title.trim().is_empty() {
        problems.push("title is empty".to_string());
    }
    let architecture = Architecture::parse(&raw.architecture).unwrap_or_else(|| {
        problems.push(format!(
            "architecture {:?} is not one of x86, x64, arm64, neutral",
            raw.architecture
        ));
        Architecture::Neutral
    });
    for (field, ids) in [("supersedes", &raw.supersedes), ("requires", &raw.requires)] {
        for other in ids {
            if !valid_id(other) {
                problems.push(format!("{field}: {other:?} is not a valid update id"));
            } else if other.eq_ignore_ascii_case(&raw.id) {
                problems.push(format!("{field}: an update cannot name itself"));
            }
        }
    }
    let target = match raw.target.as_deref() {
        None => UpdateTarget::Os,
        Some(t) => UpdateTarget::parse(t).unwrap_or_else(|| {
            problems.push(format!("target {t:?} is not one of os, winre, winpe"));
            UpdateTarget::Os
        }),
    };
    let applies_to = raw.applies_to.unwrap_or_default();
    if let (Some(lo), Some(hi)) = (applies_to.min_build, applies_to.max_build) {
        if lo > hi {
            problems.push(format!(
                "applies_to: min_build {lo} is above max_build {hi}"
            ));
        }
    }
    let mut changes = Vec::new();
    for (i, c) in raw.changes.into_iter().enumerate() {
        match change(c) {
            Ok(c) => changes.push(c),
            Err(p) => problems.push(format!("change #{}: {p}", i + 1)),
        }
    }
    let mut registry = Vec::new();
    for (i, r) in raw.registry.into_iter().enumerate() {
        match registry_entry(r) {
            Ok(r) => registry.push(r),
            Err(p) => problems.push(format!("registry #{}: {p}", i + 1)),
        }
    }
    if changes.is_empty() && registry.is_empty() && problems.is_empty() {
        problems.push("the package has no [[change]] or [[registry]] entries".to_string());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Manifest {
        id: raw.id,
        title: raw.title.trim().to_string(),
        classification: raw.classification.filter(|c| !c.trim().is_empty()),
        architecture,
        supersedes: raw.supersedes,
        requires: raw.requires,
        applies_to,
        target,
        changes,
        registry,
    })
}

fn registry_entry(r: RawRegistry) -> Result<RegistryEntry, String> {
    if let Some(source) = r.import {
        if r.hive.is_some()
            || r.key.is_some()
            || r.set.is_some()
            || r.kind.is_some()
            || r.data.is_some()
            || r.delete_value.is_some()
            || r.delete_key.is_some()
        {
            return Err("`import` stands alone: the .reg file names its keys".to_string());
        }
        let source = package_path(&source).map_err(|e| format!("import {source:?}: {e}"))?;
        return Ok(RegistryEntry::Import {
            source,
            ops: Vec::new(),
        });
    }
    let hive_name = r.hive.ok_or("a change needs `hive` (or is an `import`)")?;
    let hive = Hive::parse(&hive_name).ok_or_else(|| {
        format!("hive {hive_name:?} is not one of SOFTWARE, SYSTEM, DEFAULT, SAM, SECURITY, COMPONENTS, NTUSER")
    })?;
    let key = r.key.ok_or("a change needs `key`")?;
    registry::validate_key(&key).map_err(|e| format!("key {key:?}: {e}"))?;
    let op = match (r.set, r.delete_value, r.delete_key) {
        (Some(name), None, None | Some(false)) => {
            let kind = r.kind.ok_or("`set` needs `type`")?;
            let data = r.data.ok_or("`set` needs `data`")?;
            let value = ValueData::from_toml(&kind, &data)
                .map_err(|e| format!("value {name:?} of {key}: {e}"))?;
            RegistryOp::SetValue {
                hive,
                key,
                name,
                value,
            }
        }
        (None, Some(name), None | Some(false)) if r.kind.is_none() && r.data.is_none() => {
            RegistryOp::DeleteValue { hive, key, name }
        }
        (None, None, Some(true)) if r.kind.is_none() && r.data.is_none() => {
            RegistryOp::DeleteKey { hive, key }
        }
        _ => return Err(
            "a change is exactly one of {set, type, data}, {delete_value} or {delete_key = true}"
                .to_string(),
        ),
    };
    Ok(RegistryEntry::Change(op))
}

fn change(c: RawChange) -> Result<Change, String> {
    if c.replace.is_some() && c.rename.is_none() {
        return Err("`replace` belongs to a {rename, to} change".to_string());
    }
    match (c.add, c.at, c.delete, c.rename, c.to) {
        (Some(add), Some(at), None, None, None) => Ok(Change::Add {
            source: package_path(&add).map_err(|e| format!("add {add:?}: {e}"))?,
            target: image_path(&at).map_err(|e| format!("at {at:?}: {e}"))?,
        }),
        (None, None, Some(delete), None, None) => Ok(Change::Delete {
            path: image_path(&delete).map_err(|e| format!("delete {delete:?}: {e}"))?,
        }),
        (None, None, None, Some(rename), Some(to)) => Ok(Change::Rename {
            from: image_path(&rename).map_err(|e| format!("rename {rename:?}: {e}"))?,
            to: image_path(&to).map_err(|e| format!("to {to:?}: {e}"))?,
            replace: c.replace.unwrap_or(false),
        }),
        _ => Err("a change is exactly one of {add, at}, {delete} or {rename, to}".to_string()),
    }
}

fn components(path: &str) -> Result<Vec<&str>, String> {
    if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Err("absolute paths are not allowed".to_string());
    }
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err("the path is empty".to_string());
    }
    for p in &parts {
        if *p == ".." {
            return Err("`..` is not allowed".to_string());
        }
        if *p == "." {
            return Err("`.` components are not allowed".to_string());
        }
        if p.chars().any(|c| c.is_control() || "<>:\"|?*".contains(c)) {
            return Err(format!(
                "{p:?} has a character Windows does not allow in names"
            ));
        }
    }
    Ok(parts)
}

/// Normalises a path inside the image: `/` or `\` accepted, relative to the image root. A UNC
/// path (`\\server\share\x`) is refused like a drive path: it names another machine, not a
/// place in the image.
pub fn image_path(path: &str) -> Result<String, String> {
    let separator = |b: Option<&u8>| matches!(b, Some(b'/' | b'\\'));
    if separator(path.as_bytes().first()) && separator(path.as_bytes().get(1)) {
        return Err("network (UNC) paths such as \\\\server\\share are not allowed".to_string());
    }
    let path = path.trim_start_matches(['/', '\\']);
    Ok(components(path)?.join("/"))
}

/// Normalises a path inside the package; it must stay inside the package.
pub fn package_path(path: &str) -> Result<String, String> {
    Ok(components(path)?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
id = "KB5040001"
title = "2026-11 Cumulative Update"
architecture = "x64"
supersedes = ["KB5039999"]
[applies_to]
min_build = 22621
editions = ["Professional"]
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows\\System32\\ntoskrnl.exe"
[[change]]
delete = "/Windows/Temp/legacy.log"
[[change]]
rename = "Windows/System32/old.dll"
to = "Windows/System32/new.dll"
"#;

    #[test]
    fn parses_the_documented_example() {
        let m = parse(SAMPLE).expect("valid manifest");
        assert_eq!(m.id, "KB5040001");
        assert_eq!(m.architecture, Architecture::X64);
        assert_eq!(m.applies_to.min_build, Some(22621));
        assert_eq!(
            m.changes[0],
            Change::Add {
                source: "payload/ntoskrnl.exe".into(),
                target: "Windows/System32/ntoskrnl.exe".into()
            }
        );
        assert_eq!(
            m.changes[1],
            Change::Delete {
                path: "Windows/Temp/legacy.log".into()
            }
        );
    }

    #[test]
    fn target_defaults_to_os_and_names_the_windows_an_update_is_for() {
        assert_eq!(parse(SAMPLE).expect("valid").target, UpdateTarget::Os);
        let winre = SAMPLE.replace(
            "architecture = \"x64\"",
            "architecture = \"x64\"\ntarget = \"WinRE\"",
        );
        assert_eq!(parse(&winre).expect("valid").target, UpdateTarget::Winre);
        // The stored form of an os update is unchanged, so its digest stays.
        let stored = serde_json::to_value(parse(SAMPLE).expect("valid")).expect("json");
        assert!(stored.get("target").is_none(), "{stored}");
        let bad = SAMPLE.replace(
            "architecture = \"x64\"",
            "architecture = \"x64\"\ntarget = \"recovery\"",
        );
        let problems = parse(&bad).expect_err("refused");
        assert!(
            problems
                .iter()
                .any(|p| p == "target \"recovery\" is not one of os, winre, winpe"),
            "{problems:?}"
        );
    }

    #[test]
    fn rejects_traversal_and_absolute_sources() {
        let bad = SAMPLE.replace("payload/ntoskrnl.exe", "../../etc/passwd");
        let err = parse(&bad).unwrap_err().join("\n");
        assert!(err.contains("`..` is not allowed"), "{err}");
        let bad = SAMPLE.replace("payload/ntoskrnl.exe", "/etc/passwd");
        assert!(parse(&bad).unwrap_err().join("\n").contains("absolute"));
        let bad = SAMPLE.replace("Windows\\\\System32\\\\ntoskrnl.exe", "C:\\\\x");
        assert!(parse(&bad).unwrap_err().join("\n").contains("absolute"));
    }

    #[test]
    fn unc_targets_are_refused_like_drive_paths() {
        for target in [
            "\\\\\\\\server\\\\share\\\\x",
            "//server/share/x",
            "\\\\\\\\?\\\\C:\\\\x",
        ] {
            let bad = SAMPLE.replace("Windows\\\\System32\\\\ntoskrnl.exe", target);
            let err = parse(&bad).expect_err(target).join("\n");
            assert!(err.contains("UNC"), "{target}: {err}");
        }
        // One leading separator is the image root, as before.
        assert_eq!(image_path("\\Windows\\x").as_deref(), Ok("Windows/x"));
    }

    #[test]
    fn replace_is_a_rename_option_kept_out_of_the_stored_form_when_false() {
        let m = parse(SAMPLE).expect("valid");
        assert!(matches!(
            m.changes[2],
            Change::Rename { replace: false, .. }
        ));
        let json = serde_json::to_string(&m.changes[2]).expect("json");
        assert!(!json.contains("replace"), "{json}");
        let with = SAMPLE.replace(
            "to = \"Windows/System32/new.dll\"",
            "to = \"Windows/System32/new.dll\"\nreplace = true",
        );
        let m = parse(&with).expect("valid");
        assert!(matches!(m.changes[2], Change::Rename { replace: true, .. }));
        let misplaced = SAMPLE.replace(
            "delete = \"/Windows/Temp/legacy.log\"",
            "delete = \"a\"\nreplace = true",
        );
        assert!(parse(&misplaced).expect_err("misplaced")[0].contains("`replace` belongs"));
    }

    #[test]
    fn reports_every_problem() {
        let bad = SAMPLE
            .replace("KB5040001", "KB 1")
            .replace("\"x64\"", "\"sparc\"");
        let problems = parse(&bad).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn rejects_unknown_fields_and_mixed_changes() {
        assert!(parse(&format!("{SAMPLE}\nbogus = 1")).is_err());
        let mixed = SAMPLE.replace(
            "delete = \"/Windows/Temp/legacy.log\"",
            "delete = \"a\"\nadd = \"b\"",
        );
        assert!(parse(&mixed).unwrap_err()[0].contains("exactly one"));
    }

    #[test]
    fn ids() {
        assert!(valid_id("KB5040001"));
        assert!(valid_id("a.b_c-d"));
        assert!(!valid_id(""));
        assert!(!valid_id("kb/1"));
        assert!(!valid_id(&"x".repeat(65)));
    }

    #[test]
    fn ids_that_are_not_names_on_linux_or_windows_are_refused() {
        for id in [
            ".",
            "..",
            "con",
            "CON",
            "aux.txt",
            "Nul.tar.gz",
            "prn",
            "com1",
            "LPT9.log",
            "KB1.",
        ] {
            let problems = parse(&SAMPLE.replace("KB5040001", id)).expect_err(id);
            assert!(
                problems[0].contains(&format!("id {id:?}"))
                    && problems[0].contains("choose another id"),
                "{id}: {problems:?}"
            );
        }
        for id in [
            "console",
            "com10",
            "lpt0",
            "auxiliary",
            "KB.1",
            "nul_1",
            ".hidden",
            "com",
        ] {
            assert!(valid_id(id), "{id} is a fine name");
        }
    }
}
