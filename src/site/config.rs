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
            // On Windows `D:` alone would mean "the current folder on D:".
            t if cfg!(windows) => Ok(ServicingDrive::Path(
                crate::platform::drive_letter_root(t).unwrap_or_else(|| PathBuf::from(t)),
            )),
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
    /// holds them until the write). Indexes beyond it are serviced in further passes, each
    /// adding its indexes to the one file (`servicing::assemble`); 0 means one index per pass.
    /// 256 keeps an 11-edition install.wim of 100,000 files per index under 512 MiB in all.
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
    /// The most one package may expand to at `update import`, in GiB: what its payload
    /// declares, what it writes, and what its adds lay down in the image (each target
    /// counted). A bound against a small CAB that would fill the library's disk. Fractions
    /// allowed (tests use 0.001).
    pub import_max_expanded_gib: f64,
    /// "Remove superseded updates": after the Windows packages of each index, DISM's
    /// `/Cleanup-Image /StartComponentCleanup /ResetBase` removes the components they
    /// superseded (smaller image; those updates can no longer be uninstalled). Windows hosts only.
    pub remove_superseded_updates: bool,
    /// When the scheduler re-hashes the content of every DP (cron expression); absent = never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_validation_cron: Option<String>,
    /// `[server]`: the site server (`ois serve`). Last: a TOML table follows the plain keys.
    #[serde(skip_serializing_if = "ServerSettings::is_empty")]
    pub server: ServerSettings,
}

/// `[server]` in site.toml. Paths are relative to the site directory unless absolute.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// PEM certificate (chain) for TLS, required off loopback.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub tls_key: Option<PathBuf>,
}

impl ServerSettings {
    fn is_empty(&self) -> bool {
        self.tls_certificate.is_none() && self.tls_key.is_none()
    }
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            servicing_drive: ServicingDrive::Auto,
            integrity_table: true,
            free_space_reserve_mib: 64,
            metadata_memory_mib: 256,
            provisioning_check_minutes: DEFAULT_PROVISIONING_CHECK_MINUTES,
            provisioning_max_minutes: DEFAULT_PROVISIONING_MAX_MINUTES,
            log_max_kib: DEFAULT_LOG_MAX_KIB,
            import_max_expanded_gib: DEFAULT_IMPORT_MAX_EXPANDED_GIB,
            remove_superseded_updates: false,
            content_validation_cron: None,
            server: ServerSettings::default(),
        }
    }
}

pub const DEFAULT_PROVISIONING_CHECK_MINUTES: f64 = 60.0;
pub const DEFAULT_PROVISIONING_MAX_MINUTES: f64 = 2880.0;
pub const DEFAULT_LOG_MAX_KIB: u64 = 2560;
pub const DEFAULT_IMPORT_MAX_EXPANDED_GIB: f64 = 64.0;

/// The allowed range of each number in `site.toml`. The bounds keep every conversion to bytes
/// or to a duration far from overflow (a reserve of 2^44 MiB used to wrap to a few bytes and
/// disable the space check), while being far beyond any real setting.
const INTEGER_RANGES: [(&str, u64, u64, &str); 3] = [
    ("free_space_reserve_mib", 0, 1 << 30, "MiB"),
    ("metadata_memory_mib", 0, 1 << 20, "MiB"),
    ("log_max_kib", 0, 4 << 20, "KiB"),
];
/// Minutes: 0 means the default; at most a year.
const MINUTES_MAX: f64 = 525_600.0;
/// At most 1 PiB; above zero (a bound of nothing would refuse every package).
const IMPORT_MAX_GIB: f64 = 1_048_576.0;

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
        let kib = if self.log_max_kib == 0 {
            DEFAULT_LOG_MAX_KIB
        } else {
            self.log_max_kib
        };
        kib.saturating_mul(1 << 10)
    }

    /// `free_space_reserve_mib` in bytes (saturating: never wraps to a small reserve).
    pub fn free_space_reserve_bytes(&self) -> u64 {
        self.free_space_reserve_mib.saturating_mul(1 << 20)
    }

    /// `metadata_memory_mib` in bytes (saturating).
    pub fn metadata_memory_bytes(&self) -> u64 {
        self.metadata_memory_mib.saturating_mul(1 << 20)
    }

    /// `import_max_expanded_gib` in bytes (a float-to-integer cast saturates).
    pub fn import_max_expanded_bytes(&self) -> u64 {
        (self.import_max_expanded_gib * (1u64 << 30) as f64) as u64
    }

    fn integer(&self, key: &str) -> u64 {
        match key {
            "free_space_reserve_mib" => self.free_space_reserve_mib,
            "metadata_memory_mib" => self.metadata_memory_mib,
            _ => self.log_max_kib,
        }
    }

    /// Every number out of its allowed range, one problem each, naming key, value and range.
    pub fn out_of_range(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, lo, hi, unit) in INTEGER_RANGES {
            let value = self.integer(key);
            if !(lo..=hi).contains(&value) {
                problems.push(format!(
                    "{key} = {value} is out of range: allowed {lo} to {hi} ({unit})"
                ));
            }
        }
        for (key, value) in [
            (
                "provisioning_check_minutes",
                self.provisioning_check_minutes,
            ),
            ("provisioning_max_minutes", self.provisioning_max_minutes),
        ] {
            if !(value.is_finite() && (0.0..=MINUTES_MAX).contains(&value)) {
                problems.push(format!(
                    "{key} = {value} is out of range: allowed 0 to {MINUTES_MAX} (minutes; 0 means the default)"
                ));
            }
        }
        let gib = self.import_max_expanded_gib;
        if !(gib.is_finite() && gib > 0.0 && gib <= IMPORT_MAX_GIB) {
            problems.push(format!(
                "import_max_expanded_gib = {gib} is out of range: allowed above 0 to {IMPORT_MAX_GIB} (GiB)"
            ));
        }
        problems
    }

    pub fn load(path: &Path) -> Result<Self, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|e| SiteError::io(path, e))?;
        let config: SiteConfig = toml::from_str(&text).map_err(|e| SiteError::Config {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let problems = config.out_of_range();
        if !problems.is_empty() {
            return Err(SiteError::Config {
                path: path.to_path_buf(),
                message: format!("{}; fix site.toml", problems.join("; ")),
            });
        }
        Ok(config)
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
             # OfflineServicingMgr.log rolls over to OfflineServicingMgr.lo_.\n\
             # import_max_expanded_gib: the most one package may expand to at import.\n\
             # remove_superseded_updates: DISM removes superseded components after the Windows\n\
             # packages of each index (/StartComponentCleanup /ResetBase; Windows hosts).\n{body}"
        );
        std::fs::write(path, text).map_err(|e| SiteError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<SiteConfig, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.toml");
        std::fs::write(&path, text).expect("write");
        SiteConfig::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn every_number_out_of_range_is_refused_naming_file_key_value_and_range() {
        let cases = [
            (
                "free_space_reserve_mib = 17592186044416",
                "free_space_reserve_mib = 17592186044416",
                "allowed 0 to 1073741824",
            ),
            (
                "metadata_memory_mib = 18446744073709",
                "metadata_memory_mib = 18446744073709",
                "allowed 0 to 1048576",
            ),
            (
                "log_max_kib = 9007199254740992",
                "log_max_kib = 9007199254740992",
                "allowed 0 to 4194304",
            ),
            (
                "import_max_expanded_gib = 0",
                "import_max_expanded_gib = 0",
                "allowed above 0 to 1048576",
            ),
            (
                "import_max_expanded_gib = -3",
                "import_max_expanded_gib = -3",
                "allowed above 0 to 1048576",
            ),
            (
                "provisioning_max_minutes = -1",
                "provisioning_max_minutes = -1",
                "allowed 0 to 525600",
            ),
            (
                "provisioning_check_minutes = -0.5",
                "provisioning_check_minutes = -0.5",
                "allowed 0 to 525600",
            ),
            (
                "provisioning_max_minutes = nan",
                "provisioning_max_minutes = NaN",
                "allowed 0 to 525600",
            ),
            (
                "provisioning_check_minutes = inf",
                "provisioning_check_minutes = inf",
                "allowed 0 to 525600",
            ),
            (
                "provisioning_max_minutes = 1e300",
                "provisioning_max_minutes = 1000000",
                "allowed 0 to 525600",
            ),
        ];
        for (text, named, range) in cases {
            let err = load(text).expect_err(text);
            assert!(err.contains("site.toml"), "{text}: names the file: {err}");
            assert!(err.contains(named), "{text}: names key and value: {err}");
            assert!(err.contains(range), "{text}: says the range: {err}");
        }
        let both = load("free_space_reserve_mib = 17592186044416\nprovisioning_max_minutes = -1")
            .expect_err("two problems");
        assert!(
            both.contains("free_space_reserve_mib") && both.contains("provisioning_max_minutes"),
            "every problem is reported: {both}"
        );
    }

    #[test]
    fn numbers_in_range_load_and_convert_without_wrapping() {
        let c = load(
            "free_space_reserve_mib = 1073741824\nmetadata_memory_mib = 0\nprovisioning_max_minutes = 0.05\nimport_max_expanded_gib = 1.5",
        )
        .expect("valid");
        assert_eq!(c.free_space_reserve_bytes(), 1 << 50);
        assert_eq!(c.import_max_expanded_bytes(), 3 << 29);
        assert_eq!(c.provisioning_max_age(), std::time::Duration::from_secs(3));
        let defaults = load("").expect("defaults");
        assert_eq!(defaults.import_max_expanded_bytes(), 64 << 30);
        assert!(SiteConfig::default().out_of_range().is_empty());
        // Even a value past the range cannot wrap where it becomes bytes.
        let huge = SiteConfig {
            free_space_reserve_mib: 1 << 44,
            ..SiteConfig::default()
        };
        assert_eq!(huge.free_space_reserve_bytes(), u64::MAX);
    }
}
