//! Reading `dism.exe /English` listings: `Key : Value` lines in blank-line separated blocks.

use std::path::PathBuf;

fn blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        match line.split_once(" : ") {
            Some((k, v)) => current.push((k.trim().to_string(), v.trim().to_string())),
            None if line.trim().is_empty() && !current.is_empty() => {
                out.push(std::mem::take(&mut current))
            }
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn field<'a>(block: &'a [(String, String)], key: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub identity: String,
    pub state: String,
}

impl InstalledPackage {
    /// "Installed" or, when first-boot actions remain, "Install Pending".
    pub fn is_installed(&self) -> bool {
        self.state.eq_ignore_ascii_case("Installed")
            || self.state.eq_ignore_ascii_case("Install Pending")
    }
}

/// `/Get-Packages`: every package of the mounted image with its state.
pub fn installed_packages(text: &str) -> Vec<InstalledPackage> {
    blocks(text)
        .iter()
        .filter_map(|b| {
            Some(InstalledPackage {
                identity: field(b, "Package Identity")?.to_string(),
                state: field(b, "State").unwrap_or("").to_string(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedImage {
    pub mount_dir: PathBuf,
    pub image_file: PathBuf,
    pub index: u32,
    pub status: String,
}

/// `/Get-MountedWimInfo`: every image mounted on this host.
pub fn mounted_images(text: &str) -> Vec<MountedImage> {
    blocks(text)
        .iter()
        .filter_map(|b| {
            Some(MountedImage {
                mount_dir: PathBuf::from(field(b, "Mount Dir")?),
                image_file: PathBuf::from(field(b, "Image File").unwrap_or("")),
                index: field(b, "Image Index")?.parse().ok()?,
                status: field(b, "Status").unwrap_or("").to_string(),
            })
        })
        .collect()
}
