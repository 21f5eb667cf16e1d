//! Installed-update detection: ois's own servicing record in the WIM XML, and Windows' own
//! package manifests under `Windows/servicing/Packages`.

use std::collections::BTreeSet;

use super::packages::InstalledPackage;
use crate::library::cbs::CbsIdentity;
use crate::wim::{Wim, WimError};

/// Image property holding the updates ois installed, space separated.
pub const RECORD_PROPERTY: &str = "OIS/INSTALLEDUPDATES";
/// Image property holding when ois last serviced the image (RFC 3339).
pub const SERVICED_PROPERTY: &str = "OIS/LASTSERVICED";
const PACKAGES_DIR: &str = "Windows/servicing/Packages";

pub fn from_record(wim: &Wim, index: u32) -> BTreeSet<String> {
    wim.property(index, RECORD_PROPERTY)
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `Package_for_KB5034441~31bf3856ad364e35~amd64~~10.0.1.0.mum` → `KB5034441`.
pub fn kb_from_package_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if !lower.starts_with("package_") {
        return None;
    }
    let at = lower.find("_for_kb")? + "_for_kb".len();
    let digits: String = lower[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!digits.is_empty()).then(|| format!("KB{digits}"))
}

/// `<package identifier="KB5034123" releaseType="Update">` → `KB5034123`.
pub fn kb_from_mum(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    for quote in ['"', '\''] {
        let needle = format!("identifier={quote}kb");
        if let Some(pos) = lower.find(&needle) {
            let start = pos + needle.len();
            let digits: String = lower[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !digits.is_empty() {
                return Some(format!("KB{digits}"));
            }
        }
    }
    None
}

/// A package manifest is a few KB. One larger than this is not read: an image holding one
/// was not made by Windows servicing, and reading it would cost its size in memory.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// What `Windows/servicing/Packages` says of an index.
#[derive(Debug, Default)]
pub struct PackagesFolder {
    /// (package, KB) for each `.mum` that names a KB: the package is the file name without
    /// `.mum`.
    pub kbs: Vec<(String, String)>,
    /// Every package identity a `.mum` name spells.
    pub identities: Vec<CbsIdentity>,
}

impl PackagesFolder {
    /// The KBs installed: those with at least one package the merged list says is installed
    /// (with a hive, a staged package's KB is not). A `.mum` whose name is not an identity is
    /// not in that list, and its KB counts as before.
    pub fn installed_kbs(&self, packages: &[InstalledPackage]) -> BTreeSet<String> {
        self.kbs
            .iter()
            .filter(|(package, _)| {
                packages
                    .iter()
                    .find(|p| p.identity.eq_ignore_ascii_case(package))
                    .is_none_or(|p| p.installed)
            })
            .map(|(_, kb)| kb.clone())
            .collect()
    }
}

/// The Windows packages of an index, from the `.mum` names. The few whose name does not carry
/// the KB (such as `Package_for_RollupFix`) are read straight from the WIM's blobs, each up to
/// [`MAX_MANIFEST_BYTES`]; nothing is extracted.
pub fn from_windows_packages(wim: &Wim, index: u32) -> Result<PackagesFolder, WimError> {
    let entries = match wim.list(index, PACKAGES_DIR, false) {
        Ok(e) => e,
        Err(e) if e.is_missing_path() => return Ok(PackagesFolder::default()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    let mut identities = Vec::new();
    let mut to_read = Vec::new();
    for e in entries.iter().filter(|e| !e.is_dir) {
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        if !name.to_ascii_lowercase().ends_with(".mum") {
            continue;
        }
        // Length checked above: the name ends with the ASCII ".mum".
        if let Some(identity) = CbsIdentity::parse(&name[..name.len() - ".mum".len()]) {
            identities.push(identity);
        }
        let package = name[..name.len() - ".mum".len()].to_string();
        match kb_from_package_name(name) {
            Some(kb) => found.push((package, kb)),
            None if name.to_ascii_lowercase().starts_with("package_") => to_read.push(e),
            None => {}
        }
    }
    if to_read.is_empty() {
        return Ok(PackagesFolder {
            kbs: found,
            identities,
        });
    }
    let mut files = wim.files()?;
    for e in to_read {
        if e.size > MAX_MANIFEST_BYTES {
            tracing::warn!(
                "{} in index {index} of {} is {} bytes, over the {} MiB a package manifest can be: not read for installed-update detection",
                e.path,
                wim.path().display(),
                e.size,
                MAX_MANIFEST_BYTES >> 20
            );
            continue;
        }
        match files.read(e, MAX_MANIFEST_BYTES) {
            Ok(bytes) => {
                if let Some(kb) = kb_from_mum(&String::from_utf8_lossy(&bytes)) {
                    let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                    found.push((name[..name.len() - ".mum".len()].to_string(), kb));
                }
            }
            // The manifest is only a hint; damage in it is for the WIM's verification to report.
            Err(err) => tracing::warn!(
                "cannot read {} in index {index} of {}: {err}; its package is not detected",
                e.path,
                wim.path().display()
            ),
        }
    }
    Ok(PackagesFolder {
        kbs: found,
        identities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        assert_eq!(
            kb_from_package_name("Package_for_KB5034441~31bf3856ad364e35~amd64~~10.0.1.0.mum")
                .as_deref(),
            Some("KB5034441")
        );
        assert_eq!(
            kb_from_package_name("package_1_for_kb5005565~31bf.mum").as_deref(),
            Some("KB5005565")
        );
        assert_eq!(
            kb_from_package_name(
                "Package_for_RollupFix~31bf3856ad364e35~amd64~~22621.3007.1.6.mum"
            ),
            None
        );
        assert_eq!(
            kb_from_package_name("Microsoft-Windows-Foo-Package~31bf.mum"),
            None
        );
    }

    #[test]
    fn mum_identifier() {
        let mum = r#"<?xml version="1.0" encoding="UTF-8"?><assembly><package identifier="KB5034123" releaseType="Update"></package></assembly>"#;
        assert_eq!(kb_from_mum(mum).as_deref(), Some("KB5034123"));
        assert_eq!(
            kb_from_mum("<package identifier='kb42' />").as_deref(),
            Some("KB42")
        );
        assert_eq!(kb_from_mum("<package identifier=\"Foundation\" />"), None);
    }
}
