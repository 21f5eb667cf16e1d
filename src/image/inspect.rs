//! Reading what a WIM holds: its header, and per index the Windows facts from the XML.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::detect;
use super::hive::{self, HiveFacts};
use super::packages::{self, InstalledPackage};
use crate::library::Architecture;
use crate::wim::{Compression, Wim, WimError};

/// One index (edition) of a WIM.
#[derive(Debug, Clone, Serialize)]
pub struct IndexInfo {
    pub index: u32,
    pub name: String,
    pub architecture: Option<Architecture>,
    pub build: Option<u32>,
    pub version: Option<String>,
    pub edition: Option<String>,
    pub product_name: Option<String>,
    /// The update build revision, from the SOFTWARE hive.
    pub ubr: Option<u32>,
    /// `DisplayVersion` (23H2, 24H2), from the SOFTWARE hive.
    pub display_version: Option<String>,
    /// Where the Windows packages and the version were read: the SOFTWARE hive, or why not.
    pub packages_from: Option<String>,
}

/// What was read from a WIM file.
#[derive(Debug, Clone)]
pub struct WimContents {
    pub compression: Option<Compression>,
    pub chunk_size: u32,
    pub indexes: Vec<IndexInfo>,
    /// Per index, the updates found installed and where each was found
    /// (`windows-package` or `ois-record`).
    pub installed: Vec<BTreeMap<String, &'static str>>,
    /// Per index, its Windows packages with their state.
    pub packages: Vec<Vec<InstalledPackage>>,
}

/// Why a WIM cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Wim(#[from] WimError),
    #[error("{} is a split WIM (.swm): join it with `wimlib-imagex join` (or DISM /Export-Image) first", .0.display())]
    Split(std::path::PathBuf),
    #[error("{} has no images", .0.display())]
    Empty(std::path::PathBuf),
    #[error("index {index} of {} holds unsafe entries that wimlib would silently drop ({}): the WIM was not made by a well-behaved tool; rebuild it from a clean capture", path.display(), messages.join("; "))]
    UnsafeEntries {
        path: std::path::PathBuf,
        index: u32,
        messages: Vec<String>,
    },
}

/// wimlib's WINDOWS/ARCH codes.
pub fn architecture_from_code(code: &str) -> Option<Architecture> {
    match code.trim() {
        "0" => Some(Architecture::X86),
        "9" => Some(Architecture::X64),
        "12" => Some(Architecture::Arm64),
        _ => None,
    }
}

pub fn architecture_code(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86 => "0",
        Architecture::X64 => "9",
        Architecture::Arm64 => "12",
        Architecture::Neutral => "",
    }
}

/// Opens a WIM and checks every index loads whole.
pub fn inspect(path: &Path) -> Result<WimContents, InspectError> {
    let wim = Wim::open(path, true)?;
    let header = wim.header();
    if header.is_split {
        return Err(InspectError::Split(path.to_path_buf()));
    }
    if header.image_count == 0 {
        return Err(InspectError::Empty(path.to_path_buf()));
    }
    let mut indexes = Vec::new();
    let mut installed = Vec::new();
    let mut all_packages = Vec::new();
    for index in 1..=header.image_count {
        check_loads_whole(&wim, index)?;
        let folder = detect::from_windows_packages(&wim, index)?;
        let (facts, packages_from) = match hive::read(&wim, index) {
            Ok(Some(facts)) => (Some(facts), hive::SOFTWARE_HIVE.to_string()),
            Ok(None) => (
                None,
                format!(
                    "Windows/servicing/Packages only: index {index} has no {} (WinPE-like or a bare image)",
                    hive::SOFTWARE_HIVE
                ),
            ),
            Err(e) => {
                tracing::warn!("{e}; index {index}'s packages are read from Windows/servicing/Packages only");
                (
                    None,
                    format!("Windows/servicing/Packages only: the SOFTWARE hive could not be read ({e})"),
                )
            }
        };
        let mut info = index_info(&wim, index);
        if let Some(facts) = &facts {
            apply_hive(&mut info, facts);
        }
        info.packages_from = Some(packages_from);
        indexes.push(info);
        let packages = packages::merge(&folder.identities, facts.as_ref());
        let mut found = BTreeMap::new();
        for kb in folder.installed_kbs(&packages) {
            found.insert(kb, "windows-package");
        }
        all_packages.push(packages);
        for id in detect::from_record(&wim, index) {
            found.entry(id).or_insert("ois-record");
        }
        installed.push(found);
    }
    Ok(WimContents {
        compression: header.compression,
        chunk_size: header.chunk_size,
        indexes,
        installed,
        packages: all_packages,
    })
}

/// The hive is what Windows itself reads: its build, revision and edition win over the WIM
/// XML, which the capturing tool wrote.
fn apply_hive(info: &mut IndexInfo, facts: &HiveFacts) {
    if let Some(build) = facts.current_build {
        info.build = Some(build);
    }
    info.ubr = facts.ubr;
    info.display_version = facts.display_version.clone();
    if facts.edition_id.is_some() {
        info.edition = facts.edition_id.clone();
    }
    if facts.product_name.is_some() && info.product_name.is_none() {
        info.product_name = facts.product_name.clone();
    }
    if let (Some(build), Some(ubr)) = (info.build, facts.ubr) {
        let xml: Vec<String> = info
            .version
            .as_deref()
            .map(|v| v.split('.').map(str::to_string).collect())
            .unwrap_or_default();
        let major = facts
            .major
            .map(|m| m.to_string())
            .or_else(|| xml.first().cloned())
            .unwrap_or_else(|| "10".into());
        let minor = facts
            .minor
            .map(|m| m.to_string())
            .or_else(|| xml.get(1).cloned())
            .unwrap_or_else(|| "0".into());
        info.version = Some(format!("{major}.{minor}.{build}.{ubr}"));
    }
}

pub fn check_loads_whole(wim: &Wim, index: u32) -> Result<(), InspectError> {
    let dropped = wim.load_image_checked(index)?;
    if !dropped.is_empty() {
        return Err(InspectError::UnsafeEntries {
            path: wim.path().to_path_buf(),
            index,
            messages: dropped,
        });
    }
    Ok(())
}

pub fn index_info(wim: &Wim, index: u32) -> IndexInfo {
    let prop = |name: &str| wim.property(index, name).filter(|v| !v.trim().is_empty());
    let build = prop("WINDOWS/VERSION/BUILD").and_then(|b| b.trim().parse().ok());
    let version = match (
        prop("WINDOWS/VERSION/MAJOR"),
        prop("WINDOWS/VERSION/MINOR"),
        &build,
    ) {
        (Some(ma), Some(mi), Some(b)) => {
            let sp = prop("WINDOWS/VERSION/SPBUILD").unwrap_or_else(|| "0".into());
            Some(format!("{ma}.{mi}.{b}.{sp}"))
        }
        _ => None,
    };
    IndexInfo {
        index,
        name: prop("NAME").unwrap_or_else(|| format!("Index {index}")),
        architecture: prop("WINDOWS/ARCH").and_then(|a| architecture_from_code(&a)),
        build,
        version,
        edition: prop("WINDOWS/EDITIONID"),
        product_name: prop("WINDOWS/PRODUCTNAME"),
        ubr: None,
        display_version: None,
        packages_from: None,
    }
}
