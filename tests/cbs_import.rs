//! Windows (CBS) update packages in the content library: every container form built with the
//! peer tools that make the real ones' layouts (gcab for CABs and classic MSUs, wimlib-imagex
//! for WIM-format MSUs), and hostile containers refused with nothing stored.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cbs::{cbs_cab, gcab, mum, tools, TOKEN};
use common::{sha256, TestSite};

fn lcu_mum() -> Vec<u8> {
    mum(
        "Package_for_RollupFix",
        "26100.9457.1.0",
        "KB5099999",
        "Security Update",
        &[
            ("Microsoft-Windows-Foundation-Package", "10.0.26100.1742"),
            ("Microsoft-Windows-ProfessionalEdition", "10.0.26100.1742"),
        ],
    )
}

fn ssu_mum() -> Vec<u8> {
    mum(
        "Package_for_ServicingStack_1742",
        "26100.1742.1.0",
        "KB5043937",
        "Update",
        &[],
    )
}

fn utf16_properties(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    bytes
}

/// A classic combined MSU: servicing stack and cumulative update CABs, WSUSSCAN.cab, the
/// pkgProperties text and the unattend document.
fn classic_msu(site: &TestSite, dest: &Path) -> PathBuf {
    let ssu = cbs_cab(
        site,
        &site.path("parts/SSU-26100.1742-x64.cab"),
        ssu_mum(),
        false,
    );
    let lcu = cbs_cab(
        site,
        &site.path("parts/Windows11.0-KB5099999-x64.cab"),
        lcu_mum(),
        false,
    );
    let scan = gcab(
        site,
        &site.path("parts/WSUSSCAN.cab"),
        &[("package.xml", b"<OfflineSyncPackage/>".to_vec())],
    );
    let properties = utf16_properties(
        "ApplicabilityInfo=\"Windows 11.0\"\r\nAppliesTo=\"Windows 11\"\r\nBuild Date=\"2026/11/05\"\r\nCompany=\"Microsoft Corporation\"\r\nFile Version=\"10.0.26100.9457\"\r\nInstallation Type=\"FULL\"\r\nInstaller Engine=\"Component Based Servicing API\"\r\nKB Article Number=\"5099999\"\r\nLanguage=\"ALL\"\r\nPackage Type=\"Security Update\"\r\nProcessor Architecture=\"amd64\"\r\nProduct Name=\"Windows 11\"\r\n",
    );
    let unattend = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><unattend xmlns="urn:schemas-microsoft-com:unattend"><servicing><package action="install"><assemblyIdentity name="Package_for_RollupFix" version="26100.9457.1.0" processorArchitecture="amd64" publicKeyToken="{TOKEN}" language="neutral"/><source location="%configsetroot%\Windows11.0-KB5099999-x64.cab"/></package></servicing></unattend>"#
    );
    let read = |p: &Path| std::fs::read(p).expect("read");
    gcab(
        site,
        dest,
        &[
            ("WSUSSCAN.cab", read(&scan)),
            ("SSU-26100.1742-x64.cab", read(&ssu)),
            ("Windows11.0-KB5099999-x64.cab", read(&lcu)),
            ("Windows11.0-KB5099999-x64-pkgProperties.txt", properties),
            ("Windows11.0-KB5099999-x64.xml", unattend.into_bytes()),
        ],
    )
}

fn stored_files(site: &TestSite) -> Vec<PathBuf> {
    common::files_under(&site.root().join("ContentLibrary"))
}

/// Is `bytes` stored, unchanged, under its SHA-256?
fn stored_unchanged(site: &TestSite, bytes: &[u8]) -> bool {
    let sha = sha256(bytes);
    let path = site
        .root()
        .join("ContentLibrary/files")
        .join(&sha[..2])
        .join(&sha);
    std::fs::read(path).is_ok_and(|b| b == bytes)
}

fn list(site: &TestSite, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["update", "list", "--json"];
    args.extend_from_slice(extra);
    site.ois(&args)
        .ok()
        .json()
        .as_array()
        .expect("array")
        .clone()
}

fn show(site: &TestSite, key: &str) -> Vec<serde_json::Value> {
    site.ois(&["update", "show", key, "--json"])
        .ok()
        .json()
        .as_array()
        .expect("array")
        .clone()
}

#[test]
fn a_cbs_cab_is_identified_stored_unchanged_and_imported_once() {
    if !tools() {
        return;
    }
    let site = TestSite::new();
    site.sample_packages();
    let cab = cbs_cab(
        &site,
        &site.path("in/Windows11.0-KB5099999-x64.cab"),
        lcu_mum(),
        false,
    );
    let run = site
        .ois(&["update", "import", cab.to_str().expect("utf8")])
        .ok();
    assert!(run.stdout.contains("Imported KB5099999"), "{}", run.stdout);
    assert!(stored_unchanged(&site, &std::fs::read(&cab).expect("cab")));

    let shown = show(&site, "KB5099999");
    assert_eq!(shown.len(), 1);
    let p = &shown[0];
    assert_eq!(
        p["identity"],
        "Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9457.1.0"
    );
    assert_eq!(p["identity_parts"]["language"], "");
    assert_eq!(p["identity_parts"]["version"], "26100.9457.1.0");
    assert_eq!(p["kind"], "cbs");
    assert_eq!(p["package_kind"], "cumulative_update");
    assert_eq!(p["release_type"], "Security Update");
    assert_eq!(p["classification"], "Security Updates");
    assert_eq!(p["architecture"], "x64");
    assert_eq!(p["restart"], "possible");
    assert_eq!(p["container"], "cab");
    assert_eq!(p["custom_information"]["PackageFormat"], "PSFX");
    assert_eq!(p["editions"], serde_json::json!(["Professional"]));
    assert_eq!(
        p["parents"][0]["identity"]["name"],
        "Microsoft-Windows-Foundation-Package"
    );
    assert_eq!(p["parents"][0]["build_compare"], "EQ");
    assert_eq!(p["parents"][0]["revision_compare"], "GE");
    assert_eq!(p["entries"], 3);
    assert_eq!(p["files"][0]["role"], "cab");
    // The identity names it as well as the KB.
    assert_eq!(
        show(
            &site,
            "Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9457.1.0"
        )
        .len(),
        1
    );
    let text = site.ois(&["update", "show", "KB5099999"]).ok().stdout;
    assert!(
        text.contains("Microsoft-Windows-Foundation-Package~31bf3856ad364e35~amd64~~10.0.26100.1742  build EQ, revision GE"),
        "{text}"
    );

    // Both kinds side by side.
    let listed = list(&site, &[]);
    let kinds: Vec<(&str, &str)> = listed
        .iter()
        .map(|u| {
            (
                u["id"].as_str().expect("id"),
                u["kind"].as_str().expect("kind"),
            )
        })
        .collect();
    assert!(kinds.contains(&("KB5099999", "cbs")), "{kinds:?}");
    assert!(kinds.iter().any(|(_, k)| *k == "file"), "{kinds:?}");
    let table = site.ois(&["update", "list"]).ok().stdout;
    assert!(
        table.lines().next().expect("header").contains("Kind"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with("KB5099999")
            && l.contains(" cbs ")
            && l.contains("cumulative update")),
        "{table}"
    );
    let filtered: Vec<String> = list(&site, &["--filter", "rollupfix"])
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(filtered, ["KB5099999"]);
    assert!(list(&site, &["--arch", "arm64", "--filter", "KB5099999"]).is_empty());
    assert_eq!(
        list(&site, &["--arch", "x64", "--filter", "KB5099999"]).len(),
        1
    );

    // The same file again is a no-op.
    let files_before = stored_files(&site).len();
    let again = site
        .ois(&["update", "import", cab.to_str().expect("utf8")])
        .ok();
    assert!(
        again
            .stdout
            .contains("Already in the content library: KB5099999"),
        "{}",
        again.stdout
    );
    assert_eq!(stored_files(&site).len(), files_before);

    // A different file claiming the same identity is refused, naming both.
    let other = gcab(
        &site,
        &site.path("other/Windows11.0-KB5099999-x64-repacked.cab"),
        &[
            ("update.mum", lcu_mum()),
            ("extra.manifest", b"<assembly/>".to_vec()),
        ],
    );
    let run = site
        .ois(&["update", "import", other.to_str().expect("utf8")])
        .failed();
    assert!(
        run.stderr
            .contains("Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9457.1.0")
            && run.stderr.contains(cab.to_str().expect("utf8"))
            && run.stderr.contains(other.to_str().expect("utf8")),
        "{}",
        run.stderr
    );
    assert_eq!(stored_files(&site).len(), files_before);
}

#[test]
fn a_combined_msu_records_its_servicing_stack_and_cumulative_update() {
    if !tools() {
        return;
    }
    let site = TestSite::new();
    let msu = classic_msu(&site, &site.path("in/windows11.0-kb5099999-x64.msu"));
    site.ois(&["update", "import", msu.to_str().expect("utf8")])
        .ok();
    let listed = list(&site, &[]);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let ssu = &show(&site, "KB5043937")[0];
    let lcu = &show(&site, "KB5099999")[0];
    assert_eq!(ssu["package_kind"], "servicing_stack");
    assert_eq!(
        ssu["identity"],
        "Package_for_ServicingStack_1742~31bf3856ad364e35~amd64~~26100.1742.1.0"
    );
    assert_eq!(ssu["member"], "SSU-26100.1742-x64.cab");
    assert_eq!(lcu["package_kind"], "cumulative_update");
    assert_eq!(lcu["member"], "Windows11.0-KB5099999-x64.cab");
    assert_eq!(lcu["container"], "msu");
    assert_eq!(lcu["properties"]["KB Article Number"], "5099999");
    assert_eq!(lcu["classification"], "Security Updates");
    assert_eq!(ssu["classification"], "Updates");
    // Remembered as one MSU file: each names the other, both stored as the one original.
    assert_eq!(lcu["bundled_with"][0], ssu["identity"]);
    assert_eq!(ssu["bundled_with"][0], lcu["identity"]);
    assert_eq!(lcu["source_sha256"], ssu["source_sha256"]);
    assert_eq!(lcu["files"][0]["role"], "msu");
    let bytes = std::fs::read(&msu).expect("msu");
    assert!(stored_unchanged(&site, &bytes));
    assert_eq!(stored_files(&site).len(), 1, "only the .msu is stored");
}

#[test]
fn a_wim_format_msu_and_a_folder_with_an_express_cab_import() {
    if !tools() {
        return;
    }
    let site = TestSite::new();
    // The cumulative update as a WIM inside the WIM-format MSU, its .psf beside it there.
    let lcu_tree = site.path("lcu-tree/x");
    let lcu_tree = lcu_tree.parent().expect("dir");
    std::fs::write(
        lcu_tree.join("update.mum"),
        mum(
            "Package_for_RollupFix",
            "26100.9500.1.0",
            "KB5099998",
            "Security Update",
            &[("Microsoft-Windows-Foundation-Package", "10.0.26100.1742")],
        ),
    )
    .expect("mum");
    std::fs::write(lcu_tree.join("express.psf.cix.xml"), b"<Container/>").expect("cix");
    std::fs::write(lcu_tree.join("update.cat"), b"cat").expect("cat");
    let msu_tree = site.path("msu-tree/x");
    let msu_tree = msu_tree.parent().expect("dir");
    let capture = |from: &Path, to: &Path| {
        let status = Command::new("wimlib-imagex")
            .arg("capture")
            .arg(from)
            .arg(to)
            .arg("--compress=lzx")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("wimlib-imagex");
        assert!(status.success());
    };
    capture(lcu_tree, &msu_tree.join("Windows11.0-KB5099998-x64.wim"));
    std::fs::write(
        msu_tree.join("Windows11.0-KB5099998-x64.psf"),
        vec![7u8; 4096],
    )
    .expect("psf");
    cbs_cab(
        &site,
        &msu_tree.join("SSU-26100.1800-x64.cab"),
        mum(
            "Package_for_ServicingStack_1800",
            "26100.1800.1.0",
            "KB5043938",
            "Update",
            &[],
        ),
        false,
    );
    gcab(
        &site,
        &msu_tree.join("DesktopDeployment.cab"),
        &[("dism.exe", b"MZ".to_vec())],
    );
    gcab(
        &site,
        &msu_tree.join("Windows11.0-KB5099998-x64.AggregatedMetadata.cab"),
        &[("LCUCompDB_KB5099998.xml", b"<CompDB/>".to_vec())],
    );
    let month = site.path("month/x");
    let month = month.parent().expect("dir");
    let wim_msu = month.join("Windows11.0-KB5099998-x64.msu");
    capture(msu_tree, &wim_msu);

    // An express .NET cumulative update, its .psf beside it.
    let net = cbs_cab(
        &site,
        &month.join("Windows11.0-KB5099997-x64-NDP481.cab"),
        mum(
            "Package_for_DotNetRollup_481",
            "10.0.9300.1",
            "KB5099997",
            "Update",
            &[],
        ),
        true,
    );
    let psf = month.join("Windows11.0-KB5099997-x64-NDP481.psf");
    std::fs::write(&psf, vec![9u8; 8192]).expect("psf");
    // Alone, without its .psf, the express CAB is refused.
    let lone = site.path("lone/Windows11.0-KB5099997-x64-NDP481.cab");
    std::fs::copy(&net, &lone).expect("copy");
    let run = site
        .ois(&["update", "import", lone.to_str().expect("utf8")])
        .failed();
    assert!(
        run.stderr.contains("express package") && run.stderr.contains(lone.to_str().expect("utf8")),
        "{}",
        run.stderr
    );
    assert!(stored_files(&site).is_empty());

    site.ois(&["update", "import", month.to_str().expect("utf8")])
        .ok();
    let lcu = &show(&site, "KB5099998")[0];
    assert_eq!(lcu["container"], "wim-msu");
    assert_eq!(lcu["package_kind"], "cumulative_update");
    assert_eq!(
        lcu["identity"],
        "Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9500.1.0"
    );
    assert_eq!(lcu["member"], "Windows11.0-KB5099998-x64.wim");
    assert_eq!(lcu["express"], true);
    assert_eq!(lcu["psf"]["location"], "in-msu");
    assert_eq!(lcu["psf"]["size"], 4096);
    assert_eq!(lcu["parents"][0]["identity"]["version"], "10.0.26100.1742");
    let ssu = &show(&site, "KB5043938")[0];
    assert_eq!(ssu["package_kind"], "servicing_stack");
    assert_eq!(ssu["bundled_with"][0], lcu["identity"]);
    let net_shown = &show(&site, "KB5099997")[0];
    assert_eq!(net_shown["package_kind"], "dot_net");
    assert_eq!(net_shown["psf"]["location"], "beside");
    let roles: Vec<&str> = net_shown["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["cab", "psf"]);
    assert!(stored_unchanged(&site, &std::fs::read(&psf).expect("psf")));
    assert!(stored_unchanged(
        &site,
        &std::fs::read(&wim_msu).expect("msu")
    ));
    assert_eq!(list(&site, &[]).len(), 3);
}

/// Refused with the reason and the file named; nothing stored, nothing listed.
fn refused(site: &TestSite, file: &Path, reason: &str) {
    let run = site
        .ois(&["update", "import", file.to_str().expect("utf8")])
        .failed();
    assert!(
        run.stderr.contains(reason) && run.stderr.contains(file.to_str().expect("utf8")),
        "{}: expected {reason:?}: {}",
        file.display(),
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );
    assert!(stored_files(site).is_empty(), "{:?}", stored_files(site));
    assert!(list(site, &[]).is_empty());
}

#[test]
fn hostile_windows_packages_are_refused_and_nothing_is_stored() {
    if !tools() {
        return;
    }
    let site = TestSite::new();
    // An MSU whose member climbs out of the package.
    let lcu = cbs_cab(&site, &site.path("parts/lcu.cab"), lcu_mum(), false);
    let traversal = site.path("bad/traversal.msu");
    ois::sample::write_cab(
        &traversal,
        &[
            ("WSUSSCAN.cab", b"MSCF".to_vec()),
            (
                "..\\..\\Windows11.0-KB5099999-x64.cab",
                std::fs::read(&lcu).expect("lcu"),
            ),
        ],
    )
    .expect("cab");
    refused(&site, &traversal, "`..` is not allowed");

    // A 50 MB update.mum (well-formed: one long comment).
    let mut big = lcu_mum();
    big.extend_from_slice(b"<!--");
    big.resize(big.len() + (50 << 20), b' ');
    big.extend_from_slice(b"-->");
    let huge = cbs_cab(&site, &site.path("bad/huge-mum.cab"), big, false);
    refused(&site, &huge, "over the 8 MiB an update.mum may be");

    // Malformed XML, and a manifest without an identity.
    let malformed = cbs_cab(
        &site,
        &site.path("bad/malformed.cab"),
        b"<assembly><assemblyIdentity name=\"x\"".to_vec(),
        false,
    );
    refused(&site, &malformed, "not well-formed XML");
    let anonymous = cbs_cab(
        &site,
        &site.path("bad/anonymous.cab"),
        b"<assembly><package identifier=\"KB1\"/></assembly>".to_vec(),
        false,
    );
    refused(&site, &anonymous, "no package identity");
    // Inside an MSU, the member is named too.
    let inner_bad = gcab(
        &site,
        &site.path("bad/inner-bad.msu"),
        &[
            ("WSUSSCAN.cab", std::fs::read(&lcu).expect("lcu")),
            (
                "Windows11.0-KB1-x64.cab",
                std::fs::read(&malformed).expect("cab"),
            ),
        ],
    );
    refused(
        &site,
        &inner_bad,
        "Windows11.0-KB1-x64.cab: its update.mum: it is not well-formed XML",
    );

    // CAB bombs: a few KiB that expand past the bound (10 MiB here).
    site.configure("import_max_expanded_gib = 0.01");
    let zeros = vec![0u8; 64 << 20];
    let bomb = gcab(
        &site,
        &site.path("bad/bomb.cab"),
        &[("update.mum", lcu_mum()), ("zeros.bin", zeros.clone())],
    );
    assert!(std::fs::metadata(&bomb).expect("bomb").len() < (1 << 20));
    refused(&site, &bomb, "import_max_expanded_gib");
    let msu_bomb = gcab(
        &site,
        &site.path("bad/bomb.msu"),
        &[
            ("WSUSSCAN.cab", std::fs::read(&lcu).expect("lcu")),
            ("Windows11.0-KB2-x64.cab", zeros),
        ],
    );
    refused(&site, &msu_bomb, "import_max_expanded_gib");
}

/// Planning is in tests/cbs_planning.rs; here: a package for another build is named as such,
/// and a schedule that names a Windows package is refused on this host when it is set.
#[test]
fn a_windows_package_is_checked_against_the_image_and_this_host() {
    if !tools() {
        return;
    }
    let (site, wim, original) = TestSite::with_golden_image();
    let cab = cbs_cab(
        &site,
        &site.path("in/Windows11.0-KB5099999-x64.cab"),
        lcu_mum(),
        false,
    );
    site.ois(&["update", "import", cab.to_str().expect("utf8")])
        .ok();
    for key in ["KB5099999", "5099999"] {
        let run = site.ois(&["service", "golden", "--updates", key]).failed();
        assert!(
            run.stderr.contains("update KB5099999 (Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9457.1.0) applies to no index of this image: it is for build 26100, and index 1 is build 22631"),
            "{}",
            run.stderr
        );
    }
    let run = site
        .ois(&[
            "image",
            "schedule",
            "golden",
            "--updates",
            "KB5099999",
            "--now",
        ])
        .failed();
    assert!(
        run.stderr.contains("the plan holds Windows (CBS) packages: KB5099999 (cumulative update, Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.9457.1.0); installing a Windows package needs Windows' servicing stack (DISM), and this host runs linux, not Windows"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&wim).expect("wim"),
        original,
        "the image is untouched"
    );
    let shown = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    assert!(shown["runs"].as_array().expect("runs").is_empty());
    assert!(shown["servicing"]["schedule"].is_null());
}
