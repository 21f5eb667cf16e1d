//! ISO images of installation media, through Debian's tools: xorriso writes them (never a
//! hand-written ISO writer) and reports their El Torito boot entries; 7-Zip extracts them,
//! since it reads the UDF tree Microsoft's ISOs keep their files in (their ISO 9660 tree holds
//! only a README).

use std::path::Path;
use std::process::Command;

/// The BIOS boot image (El Torito, no emulation, 8 sectors of 512 bytes loaded).
pub const BIOS_BOOT: &str = "boot/etfsboot.com";
/// The UEFI boot image (El Torito, platform EFI).
pub const UEFI_BOOT: &str = "efi/microsoft/boot/efisys.bin";

/// What running a tool gave when it failed: its exit and its own words for the problem
/// (xorriso's FAILURE/SORRY lines, else the end of its stderr).
fn failure(tool: &str, out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains(": FAILURE :") || l.contains(": SORRY :") || l.contains(": MISHAP :")
        })
        .map(|l| l.split_once(" : ").map_or(l, |(_, rest)| rest).trim())
        .collect();
    let words = if problems.is_empty() {
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    } else {
        problems.join(" / ")
    };
    format!("{tool} failed ({}): {words}", out.status)
}

fn run(tool: &str, cmd: &mut Command) -> Result<std::process::Output, String> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{tool} is not installed: install it (Debian package {})",
                package(tool)
            )
        } else {
            format!("cannot run {tool}: {e}")
        }
    })?;
    if !out.status.success() {
        return Err(failure(tool, &out));
    }
    Ok(out)
}

fn package(tool: &str) -> &'static str {
    match tool {
        "7z" => "p7zip-full",
        _ => "xorriso",
    }
}

/// Extracts every file of `iso` into `dir` (which must exist and be empty).
pub fn extract(iso: &Path, dir: &Path) -> Result<(), String> {
    run(
        "7z",
        Command::new("7z")
            .arg("x")
            .arg("-y")
            .arg("-bd")
            .arg(format!("-o{}", dir.display()))
            .arg(iso),
    )?;
    // 7-Zip shows an ISO's El Torito boot images as files of a `[BOOT]` folder: they are not
    // part of the media's tree (the media holds them as boot/etfsboot.com and efisys.bin).
    let boot = dir.join("[BOOT]");
    if boot.is_dir() {
        std::fs::remove_dir_all(&boot).map_err(|e| format!("{}: {e}", boot.display()))?;
    }
    // Files from an ISO come read-only; the media folder is the site's to service.
    make_writable(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        crate::platform::make_owner_writable(&entry.path(), &meta)?;
        if meta.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// The volume label of an ISO: ISO 9660 d-characters, at most 32.
pub fn volume_id(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if id.is_empty() {
        "OIS_MEDIA".into()
    } else {
        id
    }
}

/// Writes `dir` as a bootable ISO at `iso`: BIOS El Torito from `bios` (no emulation, load
/// size 8, as Microsoft's media), UEFI El Torito from `uefi` when the media has one. ISO 9660
/// level 3 lets a file over 4 GiB span several extents; Joliet and Rock Ridge keep long names.
/// Debian's xorriso (1.5.4) writes no UDF (`-udf` is refused).
pub fn build(
    dir: &Path,
    iso: &Path,
    volume: &str,
    bios: &str,
    uefi: Option<&str>,
) -> Result<(), String> {
    let mut cmd = Command::new("xorriso");
    cmd.args([
        "-as",
        "mkisofs",
        "-iso-level",
        "3",
        "-J",
        "-joliet-long",
        "-R",
    ])
    .args(["-V", volume])
    .args(["-c", "boot/boot.catalog", "--boot-catalog-hide"])
    .args(["-b", bios, "-no-emul-boot", "-boot-load-size", "8"]);
    if let Some(uefi) = uefi {
        cmd.args(["-eltorito-alt-boot", "-e", uefi, "-no-emul-boot"]);
    }
    cmd.arg("-o").arg(iso).arg(dir);
    run("xorriso", &mut cmd).map(|_| ())
}

/// One El Torito boot entry of an ISO, as xorriso reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootEntry {
    /// `BIOS` or `UEFI`.
    pub platform: String,
    /// The boot image's path in the ISO's tree.
    pub path: String,
}

/// The El Torito boot entries of `iso` (`xorriso -report_el_torito plain`).
pub fn boot_entries(iso: &Path) -> Result<Vec<BootEntry>, String> {
    let out = run(
        "xorriso",
        Command::new("xorriso")
            .arg("-indev")
            .arg(iso)
            .args(["-report_el_torito", "plain"]),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut platforms: Vec<(String, String)> = Vec::new();
    let mut paths: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        match key.trim() {
            "El Torito boot img" if fields.len() > 1 => {
                platforms.push((fields[0].to_string(), fields[1].to_string()))
            }
            "El Torito img path" if fields.len() > 1 => {
                paths.push((fields[0].to_string(), fields[1].to_string()))
            }
            _ => {}
        }
    }
    Ok(platforms
        .into_iter()
        .map(|(n, platform)| BootEntry {
            path: paths
                .iter()
                .find(|(m, _)| *m == n)
                .map(|(_, p)| p.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            platform,
        })
        .collect())
}
