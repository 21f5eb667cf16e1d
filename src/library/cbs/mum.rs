//! Reading a CBS package's `update.mum` and an MSU's `*-pkgProperties.txt`.

use std::collections::BTreeMap;

use super::{CbsIdentity, ParentRequirement};

/// The most an `update.mum` may be: real ones are tens of KiB; a larger one is refused before
/// it is read, so a hostile package cannot make the import hold it in memory.
pub const MAX_MUM_BYTES: u64 = 8 << 20;

/// The most a `*-pkgProperties.txt` or unattend `.xml` of an MSU may be.
pub const MAX_PROPERTIES_BYTES: u64 = 1 << 20;

/// What an `update.mum` declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mum {
    pub identity: CbsIdentity,
    /// `<package identifier=…>`: the KB article, when the package names one.
    pub identifier: Option<String>,
    pub release_type: Option<String>,
    pub restart: Option<String>,
    pub parents: Vec<ParentRequirement>,
    /// `<customInformation>`'s attributes (`PackageFormat`, `PSFXVersion`, `Version`, …).
    pub custom_information: BTreeMap<String, String>,
}

/// The text of a manifest: UTF-8 (a BOM is dropped) or UTF-16 with its BOM.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes);
    }
    let rest = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(rest.to_vec()).map_err(|e| format!("it is not UTF-8 text ({e})"))
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, String> {
    if !bytes.len().is_multiple_of(2) {
        return Err("it is UTF-16 text of an odd length".into());
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    String::from_utf16(&units).map_err(|e| format!("it is not valid UTF-16 text ({e})"))
}

fn attr(node: roxmltree::Node, name: &str) -> Option<String> {
    node.attributes()
        .find(|a| a.name().eq_ignore_ascii_case(name))
        .map(|a| a.value().trim().to_string())
        .filter(|v| !v.is_empty())
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(name))
}

/// An `<assemblyIdentity>`: name and version are required; the rest defaults to empty.
fn identity_of(node: roxmltree::Node) -> Result<CbsIdentity, String> {
    let required = |key: &str| {
        attr(node, key).ok_or_else(|| format!("its assemblyIdentity has no {key} attribute"))
    };
    let language = attr(node, "language").unwrap_or_default();
    let version = required("version")?;
    // Planning compares versions part by part; one that is not numbers cannot be compared.
    version
        .parse::<super::CbsVersion>()
        .map_err(|e| format!("its assemblyIdentity's {e}"))?;
    Ok(CbsIdentity {
        name: required("name")?,
        public_key_token: attr(node, "publicKeyToken").unwrap_or_default(),
        processor_architecture: attr(node, "processorArchitecture").unwrap_or_default(),
        // The identity string leaves a neutral language empty.
        language: if language.eq_ignore_ascii_case("neutral") {
            String::new()
        } else {
            language
        },
        version,
    })
}

/// Parses an `update.mum`; the error is the reason, for the caller to name the file.
pub fn parse(text: &str) -> Result<Mum, String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1_000_000,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("it is not well-formed XML ({e})"))?;
    let root = doc.root_element();
    if !root.tag_name().name().eq_ignore_ascii_case("assembly") {
        return Err(format!(
            "its root element is <{}>, not <assembly>",
            root.tag_name().name()
        ));
    }
    let own = child(root, "assemblyIdentity")
        .ok_or("it has no package identity (<assemblyIdentity> under <assembly>)")?;
    let identity = identity_of(own).map_err(|e| format!("it has no package identity: {e}"))?;
    let required = ["publicKeyToken", "processorArchitecture"];
    for key in required {
        if attr(own, key).is_none() {
            return Err(format!(
                "it has no package identity: its assemblyIdentity has no {key} attribute"
            ));
        }
    }
    let package = child(root, "package");
    let mut parents = Vec::new();
    let mut custom_information = BTreeMap::new();
    if let Some(package) = package {
        for (n, p) in package
            .children()
            .filter(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case("parent"))
            .enumerate()
        {
            let of = child(p, "assemblyIdentity")
                .ok_or_else(|| format!("parent {} has no assemblyIdentity", n + 1))?;
            parents.push(ParentRequirement {
                identity: identity_of(of).map_err(|e| format!("parent {}: {e}", n + 1))?,
                build_compare: attr(p, "buildCompare"),
                revision_compare: attr(p, "revisionCompare"),
                integrate: attr(p, "integrate"),
                disposition: attr(p, "disposition"),
            });
        }
        if let Some(info) = child(package, "customInformation") {
            for a in info.attributes() {
                custom_information.insert(a.name().to_string(), a.value().to_string());
            }
        }
    }
    Ok(Mum {
        identity,
        identifier: package.and_then(|p| attr(p, "identifier")),
        release_type: package.and_then(|p| attr(p, "releaseType")),
        restart: package.and_then(|p| attr(p, "restart")),
        parents,
        custom_information,
    })
}

/// `Key="Value"` lines of a `*-pkgProperties.txt` (UTF-16LE with BOM).
pub fn properties(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = decode(bytes)?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        out.insert(key.trim().to_string(), value.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUM: &str = r#"<?xml version="1.0" encoding="utf-8" standalone="yes"?>
<assembly xmlns="urn:schemas-microsoft-com:asm.v3" manifestVersion="1.0" copyright="Copyright (c) Microsoft Corporation. All Rights Reserved.">
  <assemblyIdentity name="Package_for_RollupFix" version="26100.9457.1.0" processorArchitecture="amd64" language="neutral" publicKeyToken="31bf3856ad364e35"/>
  <package identifier="KB5099999" releaseType="Security Update" restart="possible">
    <mum2:customInformation xmlns:mum2="urn:schemas-microsoft-com:asm.v3" Version="10.0.26100.9457" PackageFormat="PSFX" PSFXVersion="2"/>
    <parent buildCompare="EQ" revisionCompare="GE" integrate="separate" disposition="detect">
      <assemblyIdentity name="Microsoft-Windows-Foundation-Package" version="10.0.26100.1742" processorArchitecture="amd64" language="neutral" publicKeyToken="31bf3856ad364e35"/>
    </parent>
    <update name="x"><component><assemblyIdentity name="c" version="1.0.0.0"/></component></update>
  </package>
</assembly>"#;

    #[test]
    fn a_mum_yields_identity_parents_and_custom_information() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(MUM.as_bytes());
        let m = parse(&decode(&bytes).expect("utf8")).expect("mum");
        assert_eq!(
            m.identity.to_string(),
            "Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9457.1.0"
        );
        assert_eq!(m.identifier.as_deref(), Some("KB5099999"));
        assert_eq!(m.release_type.as_deref(), Some("Security Update"));
        assert_eq!(m.restart.as_deref(), Some("possible"));
        assert_eq!(m.parents.len(), 1);
        assert_eq!(m.parents[0].build_compare.as_deref(), Some("EQ"));
        assert_eq!(m.parents[0].revision_compare.as_deref(), Some("GE"));
        assert_eq!(
            m.parents[0].identity.name,
            "Microsoft-Windows-Foundation-Package"
        );
        assert_eq!(m.custom_information["PackageFormat"], "PSFX");
    }

    #[test]
    fn a_mum_without_identity_or_well_formedness_is_refused_with_the_reason() {
        let err = parse("<assembly><package identifier=\"KB1\"/></assembly>").unwrap_err();
        assert!(err.contains("no package identity"), "{err}");
        let err = parse(&MUM.replace(" version=\"26100.9457.1.0\"", "")).unwrap_err();
        assert!(err.contains("no version attribute"), "{err}");
        // Planning compares versions part by part: one it cannot read is refused at import.
        let err = parse(&MUM.replace("26100.9457.1.0", "26100.9457.1.0.5")).unwrap_err();
        assert!(err.contains("more than four parts"), "{err}");
        let err = parse(&MUM.replace("26100.9457.1.0", "26100.x")).unwrap_err();
        assert!(err.contains("is not a number"), "{err}");
        let err = parse("<assembly><assemblyIdentity name=\"a\"").unwrap_err();
        assert!(err.contains("not well-formed XML"), "{err}");
        let err = parse("<!DOCTYPE a [<!ENTITY x \"y\">]><assembly/>").unwrap_err();
        assert!(err.contains("not well-formed XML"), "{err}");
    }

    #[test]
    fn pkg_properties_are_utf16_key_value_lines() {
        let text = "ApplicabilityInfo=\"Windows 11.0\"\r\nKB Article Number=\"5099999\"\r\nPackage Type=\"Security Update\"\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let p = properties(&bytes).expect("properties");
        assert_eq!(p["KB Article Number"], "5099999");
        assert_eq!(p["Package Type"], "Security Update");
    }
}
