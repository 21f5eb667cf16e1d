//! Windows (CBS) package fixtures in the real layouts: `update.mum` documents, and CABs made
//! by gcab.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{have, TestSite};

pub const TOKEN: &str = "31bf3856ad364e35";

/// An `update.mum` in the real layout (UTF-8 with a BOM).
pub fn mum(
    name: &str,
    version: &str,
    kb: &str,
    release: &str,
    parents: &[(&str, &str)],
) -> Vec<u8> {
    let parents: String = parents
        .iter()
        .map(|(name, version)| {
            format!(
                r#"    <parent buildCompare="EQ" revisionCompare="GE" integrate="separate" disposition="detect">
      <assemblyIdentity name="{name}" version="{version}" processorArchitecture="amd64" language="neutral" publicKeyToken="{TOKEN}"/>
    </parent>
"#
            )
        })
        .collect();
    let text = format!(
        r#"<?xml version="1.0" encoding="utf-8" standalone="yes"?>
<assembly xmlns="urn:schemas-microsoft-com:asm.v3" manifestVersion="1.0" copyright="Copyright (c) Microsoft Corporation. All Rights Reserved.">
  <assemblyIdentity name="{name}" version="{version}" processorArchitecture="amd64" language="neutral" publicKeyToken="{TOKEN}"/>
  <package identifier="{kb}" releaseType="{release}" restart="possible">
    <mum2:customInformation xmlns:mum2="urn:schemas-microsoft-com:asm.v3" Version="10.0.{version}" PackageFormat="PSFX" PSFXVersion="2"/>
{parents}    <update name="{name}-update"><package integrate="hidden"><assemblyIdentity name="{name}-sub" version="{version}" processorArchitecture="amd64" language="neutral" publicKeyToken="{TOKEN}"/></package></update>
  </package>
</assembly>
"#
    );
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// A CAB made by gcab (MSZIP) of `files`, written in a folder of their own.
pub fn gcab(site: &TestSite, dest: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = site.path(&format!(
        "gcab-src/{}",
        dest.file_name().expect("name").to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let status = Command::new("gcab")
        .current_dir(&dir)
        .args(["-c", "-z"])
        .arg(dest)
        .args(files.iter().map(|(n, _)| *n))
        .status()
        .expect("gcab");
    assert!(status.success(), "gcab failed for {}", dest.display());
    dest.to_path_buf()
}

pub fn cbs_cab(site: &TestSite, dest: &Path, mum: Vec<u8>, express: bool) -> PathBuf {
    let mut files = vec![
        ("update.mum", mum),
        (
            "amd64_microsoft-windows-kernel_31bf3856ad364e35_10.0.26100.9457_none.manifest",
            b"<assembly/>".to_vec(),
        ),
        ("update.cat", b"catalog".to_vec()),
    ];
    if express {
        files.push(("express.psf.cix.xml", b"<Container/>".to_vec()));
    }
    gcab(site, dest, &files)
}

/// gcab and wimlib-imagex are there; says the test is skipped when not.
pub fn tools() -> bool {
    let ok = have("gcab") && have("wimlib-imagex");
    if !ok {
        eprintln!("skipped: gcab and wimlib-imagex are needed (scripts/setup.sh installs them)");
    }
    ok
}
