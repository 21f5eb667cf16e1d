//! The Windows (CBS) packages an index has: every `Windows/servicing/Packages/<identity>.mum`,
//! and the state the index's SOFTWARE hive records for each package.

use serde::{Deserialize, Serialize};

use super::hive::HiveFacts;
use crate::library::cbs::CbsIdentity;

/// `CurrentState` of an installed package (0x70) and of one that can no longer be removed
/// (0x80): the two states in which a package's content is in the image.
const INSTALLED: u32 = 0x70;
const PERMANENT: u32 = 0x80;

/// A Windows package of one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub identity: String,
    /// `CurrentState` from the SOFTWARE hive, when the index has a readable hive that names the
    /// package.
    pub state: Option<u32>,
    /// Its content is in the image: the hive says installed or permanent; with no readable
    /// hive, a `.mum` is there (how W10UI decides).
    pub installed: bool,
    /// `packages-folder`, `hive`, or both.
    pub source: String,
}

impl InstalledPackage {
    pub fn parts(&self) -> Option<CbsIdentity> {
        CbsIdentity::parse(&self.identity)
    }

    pub fn state_label(&self) -> String {
        match self.state {
            Some(s) => format!("{} (0x{s:02x})", state_name(s)),
            None if self.installed => "present (.mum, no hive state)".into(),
            None => "not in the hive".into(),
        }
    }
}

/// CBS's `CurrentState` values.
pub fn state_name(state: u32) -> &'static str {
    match state {
        0x00 => "Absent",
        0x05 => "Uninstall pending",
        0x10 => "Resolving",
        0x20 => "Resolved",
        0x30 => "Staging",
        0x40 => "Staged",
        0x50 => "Superseded",
        0x60 => "Install pending",
        0x65 => "Partially installed",
        INSTALLED => "Installed",
        PERMANENT => "Permanent",
        _ => "Unknown state",
    }
}

/// One list from the `.mum` names and the hive. With a hive, its state decides what is
/// installed, and a `.mum` the hive does not name is not (the hive is CBS's own record);
/// without one, every `.mum` counts as installed.
pub fn merge(folder: &[CbsIdentity], hive: Option<&HiveFacts>) -> Vec<InstalledPackage> {
    let mut out: Vec<InstalledPackage> = folder
        .iter()
        .map(|id| InstalledPackage {
            identity: id.to_string(),
            state: None,
            installed: hive.is_none(),
            source: "packages-folder".into(),
        })
        .collect();
    let Some(hive) = hive else {
        return out;
    };
    for p in &hive.packages {
        let installed = matches!(p.current_state, Some(INSTALLED | PERMANENT));
        match out
            .iter_mut()
            .find(|o| o.identity.eq_ignore_ascii_case(&p.identity))
        {
            Some(o) => {
                o.state = p.current_state;
                o.installed = installed;
                o.source = "packages-folder, hive".into();
            }
            None => out.push(InstalledPackage {
                identity: p.identity.clone(),
                state: p.current_state,
                installed,
                source: "hive".into(),
            }),
        }
    }
    out.sort_by_key(|p| p.identity.to_ascii_lowercase());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::hive::HivePackage;

    fn id(s: &str) -> CbsIdentity {
        CbsIdentity::parse(s).expect("identity")
    }

    #[test]
    fn the_hive_decides_what_is_installed() {
        let folder = [
            id("Package_for_RollupFix~31bf3856ad364e35~amd64~~22621.4460.1.15"),
            id("Package_for_KB5000001~31bf3856ad364e35~amd64~~10.0.1.0"),
            id("Package_for_KB5000002~31bf3856ad364e35~amd64~~10.0.1.0"),
        ];
        let without = merge(&folder, None);
        assert!(without.iter().all(|p| p.installed && p.state.is_none()));
        let hive = HiveFacts {
            packages: vec![
                HivePackage {
                    identity: "package_for_rollupfix~31bf3856ad364e35~amd64~~22621.4460.1.15"
                        .into(),
                    current_state: Some(0x70),
                },
                HivePackage {
                    identity: "Package_for_KB5000001~31bf3856ad364e35~amd64~~10.0.1.0".into(),
                    current_state: Some(0x40),
                },
                HivePackage {
                    identity:
                        "Microsoft-Windows-Foundation-Package~31bf3856ad364e35~amd64~~10.0.22621.1"
                            .into(),
                    current_state: Some(0x80),
                },
            ],
            ..HiveFacts::default()
        };
        let with = merge(&folder, Some(&hive));
        let get = |n: &str| {
            with.iter()
                .find(|p| p.identity.starts_with(n))
                .expect(n)
                .clone()
        };
        assert!(get("Package_for_RollupFix").installed);
        assert_eq!(get("Package_for_RollupFix").source, "packages-folder, hive");
        let staged = get("Package_for_KB5000001");
        assert!(!staged.installed);
        assert_eq!(staged.state_label(), "Staged (0x40)");
        assert!(
            !get("Package_for_KB5000002").installed,
            "a .mum the hive does not name"
        );
        let foundation = get("Microsoft-Windows-Foundation-Package");
        assert!(foundation.installed);
        assert_eq!(foundation.source, "hive");
    }
}
