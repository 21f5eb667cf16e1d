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
    /// Memory a run may give to the directory trees of the indexes it changes, in MiB (wimlib
    /// holds them until the write). Indexes beyond it are serviced in further passes, each a
    /// full write of the WIM; 0 means one index per pass.
    pub metadata_memory_mib: u64,
    /// How often the scheduler looks for images stuck in provisioning mode, in minutes
    /// (fractions allowed; absent or 0 means 60).
    pub provisioning_check_minutes: f64,
    /// How long an image may stay in provisioning mode before the scheduler repairs it, in
    /// minutes (fractions allowed; absent or 0 means 2880, 48 hours, as `ProvisioningMaxMinutes`).
    pub provisioning_max_minutes: f64,
    /// `OfflineServicingMgr.log` rolls over to `.lo_` when it reaches this size, in KiB
    /// (absent or 0 means 2560, as Configuration Manager's default log size).
    pub log_max_kib: u64,
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
            metadata_memory_mib: 512,
            provisioning_check_minutes: DEFAULT_PROVISIONING_CHECK_MINUTES,
            provisioning_max_minutes: DEFAULT_PROVISIONING_MAX_MINUTES,
            log_max_kib: DEFAULT_LOG_MAX_KIB,
            content_validation_cron: None,
        }
    }
}

pub const DEFAULT_PROVISIONING_CHECK_MINUTES: f64 = 60.0;
pub const DEFAULT_PROVISIONING_MAX_MINUTES: f64 = 2880.0;
pub const DEFAULT_LOG_MAX_KIB: u64 = 2560;

/// Absent, zero or nonsense (negative, NaN) means the default, as for `ProvisioningMaxMinutes`.
fn minutes_or(value: f64, default: f64) -> std::time::Duration {
    let minutes = if value.is_finite() && value > 0.0 {
        value
    } else {
        default
    };
    std::time::Duration::from_secs_f64(minutes * 60.0)
}

impl SiteConfig {
    pub fn provisioning_check_interval(&self) -> std::time::Duration {
        minutes_or(
            self.provisioning_check_minutes,
            DEFAULT_PROVISIONING_CHECK_MINUTES,
        )
    }

    pub fn provisioning_max_age(&self) -> std::time::Duration {
        minutes_or(
            self.provisioning_max_minutes,
            DEFAULT_PROVISIONING_MAX_MINUTES,
        )
    }

    pub fn log_max_bytes(&self) -> u64 {
        if self.log_max_kib == 0 {
            DEFAULT_LOG_MAX_KIB << 10
        } else {
            self.log_max_kib << 10
        }
    }

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
             # staging folder ConfigMgr_OfflineImageServicing is created inside it.\n\
             # provisioning_check_minutes / provisioning_max_minutes: how often the scheduler\n\
             # looks for images stuck in provisioning mode, and after how long it repairs them\n\
             # (0 means the defaults, 60 and 2880 = 48 h). log_max_kib: size at which\n\
             # OfflineServicingMgr.log rolls over to OfflineServicingMgr.lo_.\n{body}"
        );
        std::fs::write(path, text).map_err(|e| SiteError::io(path, e))
    }
}
