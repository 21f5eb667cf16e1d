//! Windows (CBS) update packages in the content library: classic and WIM-format `.msu` files,
//! CBS `.cab` files with their `.psf`. They are read and identified here, stored unchanged by
//! SHA-256, and described in the tables `cbs_packages`, `cbs_parents` and `cbs_files`.
//! Installing them needs Windows' own servicing stack (DISM), which a Linux host does not have.

mod catalog;
pub mod container;
pub mod input;
pub mod mum;
pub mod version;

pub use catalog::{all, named};
pub(super) use catalog::{insert, recorded, Recorded};
pub use version::{compare, CbsVersion};

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::manifest::Architecture;

/// `name~publicKeyToken~processorArchitecture~language~version`, each part as the package
/// declares it (the language empty when neutral).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CbsIdentity {
    pub name: String,
    pub public_key_token: String,
    pub processor_architecture: String,
    pub language: String,
    pub version: String,
}

impl CbsIdentity {
    /// `name~token~arch~language~version`, as `.mum` file names and the hive's package keys
    /// spell it. `None` when it does not have five parts or the version is not one.
    pub fn parse(text: &str) -> Option<CbsIdentity> {
        let parts: Vec<&str> = text.trim().split('~').collect();
        let [name, token, arch, language, version] = parts[..] else {
            return None;
        };
        if name.is_empty() || version.parse::<CbsVersion>().is_err() {
            return None;
        }
        Some(CbsIdentity {
            name: name.to_string(),
            public_key_token: token.to_string(),
            processor_architecture: arch.to_string(),
            language: language.to_string(),
            version: version.to_string(),
        })
    }

    /// The version; a package whose version does not parse was refused at import, and an
    /// installed one is skipped when read, so this is 0.0.0.0 only for a hand-made identity.
    pub fn version(&self) -> CbsVersion {
        self.version.parse().unwrap_or(CbsVersion([0; 4]))
    }

    /// Same package line: same name, key and architecture (the version may differ).
    pub fn same_package(&self, other: &CbsIdentity) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self
                .public_key_token
                .eq_ignore_ascii_case(&other.public_key_token)
            && self
                .processor_architecture
                .eq_ignore_ascii_case(&other.processor_architecture)
    }
}

impl fmt::Display for CbsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}~{}~{}~{}~{}",
            self.name,
            self.public_key_token,
            self.processor_architecture,
            self.language,
            self.version
        )
    }
}

/// What a CBS package is, for ordering and planning on a Windows servicing host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CbsKind {
    ServicingStack,
    CumulativeUpdate,
    DotNet,
    SafeOs,
    Other,
}

impl CbsKind {
    /// From the identity name; a package that came as an MSU's `SSU-*.cab` is a servicing
    /// stack whatever its name.
    pub fn of(name: &str, ssu_member: bool) -> CbsKind {
        let name = name.to_ascii_lowercase();
        if ssu_member || name.starts_with("package_for_servicingstack") {
            CbsKind::ServicingStack
        } else if name.starts_with("package_for_rollupfix") {
            CbsKind::CumulativeUpdate
        } else if name.starts_with("package_for_dotnetrollup") {
            CbsKind::DotNet
        } else if name.starts_with("package_for_safeosdu") {
            CbsKind::SafeOs
        } else {
            CbsKind::Other
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CbsKind::ServicingStack => "servicing stack",
            CbsKind::CumulativeUpdate => "cumulative update",
            CbsKind::DotNet => ".NET",
            CbsKind::SafeOs => "SafeOS",
            CbsKind::Other => "other",
        }
    }
}

/// A `<parent>` of a package: an identity the target must have, and how its version compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRequirement {
    pub identity: CbsIdentity,
    pub build_compare: Option<String>,
    pub revision_compare: Option<String>,
    pub integrate: Option<String>,
    pub disposition: Option<String>,
}

/// The container a package came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerForm {
    /// A CBS `.cab` with `update.mum`.
    Cab,
    /// A classic `.msu`: a CAB of CBS CABs with `WSUSSCAN.cab`.
    Msu,
    /// A WIM-format `.msu` (Windows 11 24H2 and later).
    WimMsu,
}

impl ContainerForm {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerForm::Cab => "cab",
            ContainerForm::Msu => "msu",
            ContainerForm::WimMsu => "wim-msu",
        }
    }
}

/// An original file as stored, unchanged, in the single-instance store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalFile {
    /// `msu`, `cab` or `psf`.
    pub role: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// An express package's payload (`.psf`): beside its `.cab`, or inside the same `.msu`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsfPayload {
    pub name: String,
    pub size: u64,
    /// `beside` (stored as an original file of its own) or `in-msu`.
    pub location: String,
}

/// A CBS package in the content library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CbsPackage {
    /// The KB article (`KB5099999`), when the package or its MSU names one.
    pub kb: Option<String>,
    /// The identity string.
    pub identity: String,
    pub identity_parts: CbsIdentity,
    /// Named apart from `update list`'s kind (file or cbs).
    #[serde(rename = "package_kind")]
    pub kind: CbsKind,
    /// `releaseType` as the package gives it.
    pub release_type: Option<String>,
    pub classification: Option<String>,
    /// x64, x86, arm64, or the identity's architecture as found (wow64, msil, neutral).
    pub architecture: String,
    /// `restart` as the package gives it (possible, required, …).
    pub restart: Option<String>,
    pub parents: Vec<ParentRequirement>,
    /// Editions named by edition packages among the parents (Professional, Enterprise, …).
    pub editions: Vec<String>,
    /// `customInformation`: PackageFormat, PSFXVersion, Version, …
    pub custom_information: BTreeMap<String, String>,
    /// The CAB carries `express.psf.cix.xml`: its payload is a `.psf` file.
    pub express: bool,
    pub psf: Option<PsfPayload>,
    pub container: ContainerForm,
    /// The file imported (the `.msu` or `.cab`), as given.
    pub source: String,
    /// The SHA-256 of that file: the same file again is the same import.
    pub source_sha256: String,
    /// The CBS CAB (or WIM) inside the MSU that holds this package.
    pub member: Option<String>,
    /// Other packages that came in the same MSU file (a servicing stack beside a cumulative
    /// update), by identity.
    pub bundled_with: Vec<String>,
    /// The MSU's `*-pkgProperties.txt` for this package, when it has one.
    pub properties: BTreeMap<String, String>,
    /// Files in the package's CAB (manifests, catalogs, `update.mum`).
    pub entries: u64,
    /// The original files that make it up, stored unchanged.
    pub files: Vec<OriginalFile>,
    pub imported_at: String,
}

impl CbsPackage {
    /// A package known by its KB, identity and parents alone: what planning reads. Tests and
    /// benchmarks build their libraries with it; an import records much more.
    pub fn planned(
        kb: Option<String>,
        identity: CbsIdentity,
        parents: Vec<ParentRequirement>,
    ) -> CbsPackage {
        CbsPackage {
            kb,
            identity: identity.to_string(),
            kind: CbsKind::of(&identity.name, false),
            architecture: architecture_of(&identity.processor_architecture),
            identity_parts: identity,
            release_type: None,
            classification: None,
            restart: None,
            editions: editions_of(&parents),
            parents,
            custom_information: BTreeMap::new(),
            express: false,
            psf: None,
            container: ContainerForm::Cab,
            source: String::new(),
            source_sha256: String::new(),
            member: None,
            bundled_with: Vec::new(),
            properties: BTreeMap::new(),
            entries: 0,
            files: Vec::new(),
            imported_at: String::new(),
        }
    }

    /// The id `update list` shows: the KB, else the identity.
    pub fn id(&self) -> &str {
        self.kb.as_deref().unwrap_or(&self.identity)
    }

    /// The architecture as `--arch` filters it: wow64 runs on x64, msil and neutral anywhere.
    pub fn arch_filter_value(&self) -> Option<Architecture> {
        match self.architecture.as_str() {
            "wow64" => Some(Architecture::X64),
            "msil" | "neutral" => Some(Architecture::Neutral),
            other => Architecture::parse(other),
        }
    }

    /// Does `key` (an update id, a KB or an identity) name this package?
    pub fn is_named(&self, key: &str) -> bool {
        let key = key.trim();
        self.identity.eq_ignore_ascii_case(key)
            || self.kb.as_deref().is_some_and(|kb| {
                kb.eq_ignore_ascii_case(key)
                    || (key.chars().all(|c| c.is_ascii_digit()) && kb[2..] == *key)
            })
    }

    /// Case-insensitive match of `filter` in what is recorded of the package.
    pub fn matches_text(&self, filter: Option<&str>) -> bool {
        let Some(f) = filter.map(str::to_lowercase) else {
            return true;
        };
        let mut fields: Vec<&str> = vec![
            &self.identity,
            self.kind.label(),
            &self.source,
            &self.architecture,
        ];
        fields.extend(self.kb.as_deref());
        fields.extend(self.release_type.as_deref());
        fields.extend(self.classification.as_deref());
        fields.extend(self.member.as_deref());
        fields.extend(self.editions.iter().map(String::as_str));
        fields.extend(self.files.iter().map(|f| f.name.as_str()));
        fields.iter().any(|v| v.to_lowercase().contains(&f))
    }
}

/// `amd64` is x64; the other architectures are kept as found.
pub fn architecture_of(processor_architecture: &str) -> String {
    match processor_architecture.to_ascii_lowercase().as_str() {
        "amd64" | "x64" => "x64".into(),
        other => other.into(),
    }
}

/// The WSUS-style classification of a `releaseType` or MSU `Package Type`.
pub fn classification_of(release_type: &str) -> String {
    match release_type.trim().to_ascii_lowercase().as_str() {
        "security update" => "Security Updates".into(),
        "update" => "Updates".into(),
        "critical update" => "Critical Updates".into(),
        "hotfix" => "Hotfixes".into(),
        "feature pack" => "Feature Packs".into(),
        "service pack" => "Service Packs".into(),
        _ => release_type.trim().to_string(),
    }
}

/// `KB5099999` from an identifier, a KB article number or a file name, if it holds one.
pub fn kb_of(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let digits_after = |at: usize| -> Option<String> {
        let digits: String = upper[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (digits.len() >= 4).then(|| format!("KB{digits}"))
    };
    if upper.chars().all(|c| c.is_ascii_digit()) {
        return digits_after(0);
    }
    upper
        .match_indices("KB")
        .find_map(|(at, _)| digits_after(at + 2))
}

/// Editions named by edition packages among the parents:
/// `Microsoft-Windows-ProfessionalEdition` is Professional.
pub fn editions_of(parents: &[ParentRequirement]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in parents {
        let name = &p.identity.name;
        let lower = name.to_ascii_lowercase();
        if let Some(stem) = lower.strip_suffix("edition") {
            let start = if lower.starts_with("microsoft-windows-") {
                "microsoft-windows-".len()
            } else {
                0
            };
            let edition = name[start..stem.len()].to_string();
            if !edition.is_empty() && !out.iter().any(|e| e.eq_ignore_ascii_case(&edition)) {
                out.push(edition);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_identity_name_and_an_ssu_member() {
        assert_eq!(
            CbsKind::of("Package_for_RollupFix", false),
            CbsKind::CumulativeUpdate
        );
        assert_eq!(
            CbsKind::of("Package_for_ServicingStack_1742", false),
            CbsKind::ServicingStack
        );
        assert_eq!(
            CbsKind::of("Package_for_KB5001", true),
            CbsKind::ServicingStack
        );
        assert_eq!(
            CbsKind::of("Package_for_DotNetRollup_481", false),
            CbsKind::DotNet
        );
        assert_eq!(CbsKind::of("Package_for_SafeOSDU", false), CbsKind::SafeOs);
        assert_eq!(CbsKind::of("Package_for_KB5001", false), CbsKind::Other);
    }

    #[test]
    fn kb_numbers_are_found_in_identifiers_and_file_names() {
        assert_eq!(kb_of("KB5099999").as_deref(), Some("KB5099999"));
        assert_eq!(kb_of("5099999").as_deref(), Some("KB5099999"));
        assert_eq!(
            kb_of("windows11.0-kb5099999-x64.cab").as_deref(),
            Some("KB5099999")
        );
        assert_eq!(kb_of("SSU-26100.1742-x64.cab"), None);
    }

    #[test]
    fn edition_parents_name_editions() {
        let parent = |name: &str| ParentRequirement {
            identity: CbsIdentity {
                name: name.into(),
                public_key_token: String::new(),
                processor_architecture: String::new(),
                language: String::new(),
                version: "1".into(),
            },
            build_compare: None,
            revision_compare: None,
            integrate: None,
            disposition: None,
        };
        let parents = [
            parent("Microsoft-Windows-Foundation-Package"),
            parent("Microsoft-Windows-ProfessionalEdition"),
            parent("Microsoft-Windows-EnterpriseEdition"),
        ];
        assert_eq!(editions_of(&parents), ["Professional", "Enterprise"]);
    }
}
