//! `site.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SiteError;

/// The "local drive to use for offline servicing of images".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServicingDrive {
    /// The drive the site is on.
    #[default]
    Auto,
    /// A mount point or directory (a drive root such as `D:\` on Windows).
    Path(PathBuf),
}

impl std::str::FromStr for ServicingDrive {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" => Err("the servicing drive is empty: use `auto` or a path".into()),
            t if t.eq_ignore_ascii_case("auto") || t.eq_ignore_ascii_case("automatic") => {
                Ok(ServicingDrive::Auto)
            }
            t => Ok(ServicingDrive::Path(PathBuf::from(t))),
        }
    }
}

impl std::fmt::Display for ServicingDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServicingDrive::Auto => f.write_str("auto"),
            ServicingDrive::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Serialize for ServicingDrive {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ServicingDrive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Where `ConfigMgr_OfflineImageServicing` goes: `auto` or a path.
    pub servicing_drive: ServicingDrive,
    /// Write an integrity table into serviced WIMs (as `DISM /CheckIntegrity` expects).
    pub integrity_table: bool,
    /// Extra free space to keep on the servicing drive, in MiB, beyond what a run needs.
    pub free_space_reserve_mib: u64,
    /// When the scheduler re-hashes the content of every DP (cron expression); absent = never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_validation_cron: Option<String>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            servicing_drive: ServicingDrive::Auto,
            integrity_table: true,
            free_space_reserve_mib: 64,
            content_validation_cron: None,
        }
    }
}

impl SiteConfig {
    pub fn load(path: &Path) -> Result<Self, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|e| SiteError::io(path, e))?;
        toml::from_str(&text).map_err(|e| SiteError::Config {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), SiteError> {
        let body = toml::to_string_pretty(self).map_err(|e| SiteError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# ois site configuration\n\
             # servicing_drive: `auto` (the site's drive) or a mount point / directory; the\n\
             # staging folder ConfigMgr_OfflineImageServicing is created inside it.\n{body}"
        );
        std::fs::write(path, text).map_err(|e| SiteError::io(path, e))
    }
}
