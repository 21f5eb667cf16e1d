//! Sample content: a small Windows-like multi-index image and update packages that exercise
//! every kind of change. Used by `ois quickstart` and by the tests.

use std::path::{Path, PathBuf};

use crate::image::inspect::architecture_code;
use crate::library::Architecture;
use crate::wim::{Compression, Wim, WimError};

/// One index of a sample image.
pub struct IndexSpec<'a> {
    pub name: &'a str,
    pub edition: &'a str,
    pub architecture: Architecture,
    pub build: u32,
    /// The directory tree captured as this index.
    pub tree: &'a Path,
}

/// Writes files (relative path, content) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    for (rel, content) in files {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, content)?;
    }
    Ok(())
}

/// Captures each tree as an index and sets the Windows facts in the XML the way Windows
/// setup media carries them.
pub fn build_wim(
    path: &Path,
    compression: Compression,
    indexes: &[IndexSpec],
) -> Result<(), WimError> {
    let wim = Wim::create(compression)?;
    for (i, spec) in indexes.iter().enumerate() {
        let n = i as u32 + 1;
        wim.add_image(spec.tree, spec.name)?;
        let arch = architecture_code(spec.architecture);
        for (key, value) in [
            ("WINDOWS/ARCH", arch.to_string()),
            (
                "WINDOWS/PRODUCTNAME",
                "Microsoft® Windows® Operating System".to_string(),
            ),
            ("WINDOWS/EDITIONID", spec.edition.to_string()),
            ("WINDOWS/INSTALLATIONTYPE", "Client".to_string()),
            ("WINDOWS/VERSION/MAJOR", "10".to_string()),
            ("WINDOWS/VERSION/MINOR", "0".to_string()),
            ("WINDOWS/VERSION/BUILD", spec.build.to_string()),
            ("WINDOWS/VERSION/SPBUILD", "2861".to_string()),
            ("WINDOWS/LANGUAGES/LANGUAGE", "en-US".to_string()),
        ] {
            wim.set_property(n, key, Some(&value))?;
        }
    }
    wim.write(path, true, 0, &mut |_| crate::wim::Progress::Continue)
}

/// Text that compresses like system files do (neither random nor zeros).
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "kernel",
        "driver",
        "registry",
        "service",
        "handle",
        "thread",
        "module",
        "section",
        "buffer",
        "object",
        "policy",
        "update",
        "manifest",
        "assembly",
        "component",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = words[(state >> 33) as usize % words.len()];
        out.extend_from_slice(w.as_bytes());
        out.push(if (state >> 20).is_multiple_of(7) {
            b'\n'
        } else {
            b' '
        });
        if (state >> 40).is_multiple_of(5) {
            out.extend_from_slice(&((state >> 8) as u32).to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// The sample "golden image": Windows 11 Pro and Enterprise (x64, build 22631) with one
/// Windows package already installed (KB5030000, seen through its `.mum`).
pub fn golden_image(work: &Path, dest: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let base: Vec<(&str, Vec<u8>)> = vec![
        ("Windows/System32/ntoskrnl.exe", filler(1, 96 * 1024)),
        ("Windows/System32/kernel32.dll", filler(2, 64 * 1024)),
        ("Windows/System32/old.dll", filler(3, 24 * 1024)),
        ("Windows/System32/drivers/disk.sys", filler(4, 16 * 1024)),
        ("Windows/Temp/legacy.log", b"setup log from 2025\n".to_vec()),
        (
            "Windows/servicing/Packages/Package_for_KB5030000~31bf3856ad364e35~amd64~~10.0.1.0.mum",
            b"<?xml version=\"1.0\"?><assembly><package identifier=\"KB5030000\" releaseType=\"Update\"/></assembly>\n".to_vec(),
        ),
        ("Program Files/Common Files/shared.dll", filler(5, 32 * 1024)),
        ("Users/Default/NTUSER.DAT", filler(6, 8 * 1024)),
    ];
    let pro = work.join("pro");
    let ent = work.join("enterprise");
    write_tree(&pro, &base)?;
    write_tree(&ent, &base)?;
    write_tree(
        &ent,
        &[("Windows/System32/AppLocker.dll", filler(7, 20 * 1024))],
    )?;
    build_wim(
        dest,
        Compression::Lzx,
        &[
            IndexSpec {
                name: "Windows 11 Pro",
                edition: "Professional",
                architecture: Architecture::X64,
                build: 22631,
                tree: &pro,
            },
            IndexSpec {
                name: "Windows 11 Enterprise",
                edition: "Enterprise",
                architecture: Architecture::X64,
                build: 22631,
                tree: &ent,
            },
        ],
    )?;
    Ok(())
}

/// Writes a package directory (manifest plus payload files).
pub fn write_package(
    dir: &Path,
    manifest: &str,
    payload: &[(&str, Vec<u8>)],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(crate::library::MANIFEST_NAME), manifest)?;
    write_tree(dir, payload)?;
    Ok(dir.to_path_buf())
}

/// Writes the files of a package into a CAB (MSZIP), the format Windows updates ship in.
pub fn write_cab(dest: &Path, files: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    let mut builder = cab::CabinetBuilder::new();
    let folder = builder.add_folder(cab::CompressionType::MsZip);
    // A fixed date keeps the same content byte-identical (generated benchmark input).
    let date = cab_date();
    for (name, _) in files {
        folder.add_file(name.replace('/', "\\")).set_datetime(date);
    }
    let mut writer = builder.build(std::fs::File::create(dest)?)?;
    let mut i = 0;
    while let Some(mut w) = writer.next_file()? {
        std::io::Write::write_all(&mut w, &files[i].1)?;
        i += 1;
    }
    writer.finish()?.sync_all()
}

/// The sample packages: a servicing stack update, October's and November's cumulative
/// updates (November supersedes October and requires the stack update), and an
/// Enterprise-only update shipped as a CAB. Returns the package paths.
pub fn sample_packages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let ssu = write_package(
        &dir.join("KB5040000"),
        r#"id = "KB5040000"
title = "2026-11 Servicing Stack Update for Windows 11 (x64)"
classification = "Critical Updates"
architecture = "x64"
[applies_to]
min_build = 22621
max_build = 22631
[[change]]
add = "payload/servicing"
at = "Windows/servicing/Stack"
"#,
        &[
            ("payload/servicing/CbsCore.dll", filler(20, 40 * 1024)),
            ("payload/servicing/TiWorker.exe", filler(21, 30 * 1024)),
        ],
    )?;
    let october = write_package(
        &dir.join("KB5039999"),
        r#"id = "KB5039999"
title = "2026-10 Cumulative Update for Windows 11 (x64)"
classification = "Security Updates"
architecture = "x64"
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows/System32/ntoskrnl.exe"
"#,
        &[("payload/ntoskrnl.exe", filler(30, 100 * 1024))],
    )?;
    let november = write_package(
        &dir.join("KB5040001"),
        r#"id = "KB5040001"
title = "2026-11 Cumulative Update for Windows 11 (x64)"
classification = "Security Updates"
architecture = "x64"
supersedes = ["KB5039999"]
requires = ["KB5040000"]
[applies_to]
min_build = 22621
max_build = 22631
editions = ["Professional", "Enterprise"]
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows\\System32\\ntoskrnl.exe"
[[change]]
add = "payload/drivers"
at = "Windows/System32/drivers"
[[change]]
delete = "Windows/Temp/legacy.log"
[[change]]
rename = "Windows/System32/old.dll"
to = "Windows/System32/new.dll"
"#,
        &[
            ("payload/ntoskrnl.exe", filler(40, 110 * 1024)),
            ("payload/drivers/stornvme.sys", filler(41, 20 * 1024)),
            ("payload/drivers/netadapter.sys", filler(42, 18 * 1024)),
        ],
    )?;
    let cab_path = dir.join("KB5040002.cab");
    write_cab(
        &cab_path,
        &[
            (
                "update.toml",
                br#"id = "KB5040002"
title = "2026-11 AppLocker Update for Windows 11 Enterprise (x64)"
classification = "Updates"
architecture = "x64"
[applies_to]
editions = ["Enterprise"]
[[change]]
add = "payload/AppLocker.dll"
at = "Windows/System32/AppLocker.dll"
"#
                .to_vec(),
            ),
            ("payload/AppLocker.dll", filler(50, 22 * 1024)),
        ],
    )?;
    Ok(vec![ssu, october, november, cab_path])
}

fn cab_date() -> time::PrimitiveDateTime {
    time::PrimitiveDateTime::new(
        time::Date::from_calendar_date(2026, time::Month::November, 1).unwrap_or(time::Date::MIN),
        time::Time::MIDNIGHT,
    )
}
