//! Registry changes in packages, applied by a servicing run: images whose indexes carry
//! SOFTWARE and SYSTEM hives written by hivex (`hivexregedit --merge` onto a minimal hive), and
//! after the run every index's hives exported with `hivexregedit --export` are exactly the
//! original with what the package declares merged in by hivex itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::hive::{dword, hive_from_reg, hivex_merge, hivexget, sz};
use common::TestSite;

fn tools_here() -> bool {
    ["wimlib-imagex", "hivexregedit", "hivexget"]
        .iter()
        .all(|t| common::have_or_skip(t))
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The hives every index starts with.
fn software(path: &Path, edition: &str) {
    hive_from_reg(
        path,
        &[
            (
                r"Microsoft\Windows NT\CurrentVersion",
                vec![sz("EditionID", edition), dword("UBR", 4460)],
            ),
            (
                r"Policies\Microsoft\Windows\WindowsUpdate\AU",
                vec![dword("NoAutoUpdate", 0), dword("AUOptions", 4)],
            ),
            (r"Contoso\Legacy", vec![sz("Path", r"C:\Legacy")]),
            (r"Contoso\Legacy\Sub", vec![dword("Level", 3)]),
        ],
    );
}

fn system(path: &Path) {
    hive_from_reg(
        path,
        &[
            (r"Select", vec![dword("Current", 1), dword("Default", 1)]),
            (
                r"ControlSet001\Services\Spooler",
                vec![dword("Start", 2), sz("DisplayName", "Print Spooler")],
            ),
            (r"ControlSet001\Services\Fax", vec![dword("Start", 3)]),
        ],
    );
}

/// A two-index WIM (Pro, Enterprise), each index with its own SOFTWARE and SYSTEM hives.
fn image(site: &TestSite) -> PathBuf {
    let wim = site.path("images/golden.wim");
    std::fs::create_dir_all(wim.parent().expect("parent")).expect("mkdir");
    for (n, edition) in ["Professional", "Enterprise"].iter().enumerate() {
        let tree = site.path(&format!("trees/{n}"));
        let config = tree.join("Windows/System32/config");
        std::fs::create_dir_all(&config).expect("mkdir");
        software(&config.join("SOFTWARE"), edition);
        system(&config.join("SYSTEM"));
        std::fs::write(
            tree.join("Windows/System32/ntoskrnl.exe"),
            edition.as_bytes(),
        )
        .expect("kernel");
        let verb = if n == 0 { "capture" } else { "append" };
        let name = format!("Windows 11 {edition}");
        run(
            "wimlib-imagex",
            &[
                verb,
                tree.to_str().expect("utf8"),
                wim.to_str().expect("utf8"),
                &name,
            ],
        );
        run(
            "wimlib-imagex",
            &[
                "info",
                wim.to_str().expect("utf8"),
                &(n + 1).to_string(),
                "--image-property",
                "WINDOWS/ARCH=9",
                "--image-property",
                &format!("WINDOWS/EDITIONID={edition}"),
                "--image-property",
                "WINDOWS/VERSION/BUILD=22631",
            ],
        );
    }
    wim
}

/// The baseline admins already have: every value type, a default value, deletions, and a
/// CurrentControlSet path (offline, the control set Select\Current names).
const BASELINE_REG: &str = "Windows Registry Editor Version 5.00\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso\\Baseline]\r\n\
@=\"default text\"\r\n\
\"Name\"=\"Contoso \\\"gold\\\" image\"\r\n\
\"Expand\"=hex(2):25,00,53,00,79,00,73,00,74,00,65,00,6d,00,52,00,6f,00,6f,00,74,00,25,00,00,00\r\n\
\"Multi\"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00\r\n\
\"Count\"=dword:0000002a\r\n\
\"Big\"=hex(b):01,00,00,00,02,00,00,00\r\n\
\"Blob\"=hex:de,ad,be,ef\r\n\
\r\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU]\r\n\
\"AUOptions\"=-\r\n\
\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Fax]\r\n\
\"Start\"=dword:00000004\r\n\
\r\n";

/// The SOFTWARE sections of the baseline: hivexregedit merges one hive at a time.
fn baseline_software_part() -> String {
    let cut = BASELINE_REG
        .find("[HKEY_LOCAL_MACHINE\\SYSTEM")
        .expect("system section");
    BASELINE_REG[..cut].to_string()
}

/// What the package's own `[[registry]]` entries do, as a .reg for hivex (the reference).
const MANIFEST_AS_REG_SOFTWARE: &str = "Windows Registry Editor Version 5.00\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU]\r\n\
\"NoAutoUpdate\"=dword:00000001\r\n\
\r\n\
[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso\\Legacy]\r\n\
\r\n";

const MANIFEST_AS_REG_SYSTEM: &str = "Windows Registry Editor Version 5.00\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\Spooler]\r\n\
\"Start\"=-\r\n\
\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\Fax]\r\n\
\"Start\"=dword:00000004\r\n\
\r\n";

fn baseline_package(site: &TestSite) -> PathBuf {
    let dir = site.path("packages/OIS-BASELINE-1");
    std::fs::create_dir_all(dir.join("payload")).expect("mkdir");
    std::fs::write(
        dir.join("update.toml"),
        r#"id = "OIS-BASELINE-1"
title = "Contoso security baseline"
architecture = "x64"
[[change]]
add = "payload/readme.txt"
at = "Windows/Contoso/readme.txt"
[[registry]]
hive = "SOFTWARE"
key = 'Policies\Microsoft\Windows\WindowsUpdate\AU'
set = "NoAutoUpdate"
type = "dword"
data = 1
[[registry]]
hive = "SYSTEM"
key = 'ControlSet001\Services\Spooler'
delete_value = "Start"
[[registry]]
hive = "software"
key = 'Contoso\Legacy'
delete_key = true
[[registry]]
import = "payload/baseline.reg"
"#,
    )
    .expect("manifest");
    std::fs::write(dir.join("payload/readme.txt"), b"baseline applied").expect("readme");
    // As regedit exports it: UTF-16LE with a BOM.
    let mut utf16 = vec![0xFF, 0xFE];
    for u in BASELINE_REG.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(dir.join("payload/baseline.reg"), utf16).expect("reg");
    dir
}

/// `hivexregedit --export` of the whole hive.
fn export(hive: &Path) -> String {
    run(
        "hivexregedit",
        &[
            "--export",
            "--prefix",
            r"HKEY_LOCAL_MACHINE\X",
            hive.to_str().expect("utf8"),
            "\\",
        ],
    )
}

/// The original hive with `reg` texts merged in by hivexregedit: what ois must have written.
fn reference(original: &Path, out: &Path, prefix: &str, regs: &[&str]) -> PathBuf {
    std::fs::copy(original, out).expect("copy");
    for (n, text) in regs.iter().enumerate() {
        let reg = out.with_extension(format!("{n}.reg"));
        std::fs::write(&reg, text).expect("reg");
        hivex_merge(out, &reg, prefix);
    }
    out.to_path_buf()
}

fn extract(site: &TestSite, wim: &Path, index: u32, path: &str, dest: &str) -> PathBuf {
    let dir = site.path(dest);
    std::fs::create_dir_all(&dir).expect("mkdir");
    run(
        "wimlib-imagex",
        &[
            "extract",
            wim.to_str().expect("utf8"),
            &index.to_string(),
            path,
            &format!("--dest-dir={}", dir.display()),
            "--no-acls",
        ],
    );
    dir.join(Path::new(path).file_name().expect("name"))
}

#[test]
fn a_baseline_package_changes_every_index_hive_exactly_as_declared() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    let wim = image(&site);
    site.import_image(&wim, "golden");
    let package = baseline_package(&site);
    site.import_update(&package);
    // What the package will do, as stored: its own changes and the .reg file's, read at import.
    let shown = site.ois(&["update", "show", "OIS-BASELINE-1"]).ok().stdout;
    for line in [
        r#"  set     SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU "NoAutoUpdate" = dword:0x00000001"#,
        r#"  delete  SYSTEM\ControlSet001\Services\Spooler value "Start""#,
        r#"  delete  SOFTWARE\Contoso\Legacy (key)"#,
        "  import  payload/baseline.reg (",
        r#"    set     SOFTWARE\Contoso\Baseline "Multi" = multi_sz:["a", "bc"]"#,
    ] {
        assert!(shown.contains(line), "{line}\n{shown}");
    }
    let done = site
        .ois(&["service", "golden", "--updates", "OIS-BASELINE-1", "--json"])
        .ok()
        .json_lines();
    assert_eq!(done[0]["status"], "Successful", "{:?}", done[0]);

    for index in 1..=2u32 {
        let files = common::index_files(&wim, index);
        assert_eq!(files["Windows/Contoso/readme.txt"], b"baseline applied");
        let dir = format!("out/{index}");
        let software_after = extract(
            &site,
            &wim,
            index,
            "/Windows/System32/config/SOFTWARE",
            &dir,
        );
        let system_after = extract(&site, &wim, index, "/Windows/System32/config/SYSTEM", &dir);
        let original = site.path(&format!("trees/{}/Windows/System32/config", index - 1));
        let software_ref = reference(
            &original.join("SOFTWARE"),
            &site.path(&format!("{dir}/SOFTWARE.ref")),
            r"HKEY_LOCAL_MACHINE\SOFTWARE",
            &[MANIFEST_AS_REG_SOFTWARE, &baseline_software_part()],
        );
        let system_ref = reference(
            &original.join("SYSTEM"),
            &site.path(&format!("{dir}/SYSTEM.ref")),
            r"HKEY_LOCAL_MACHINE\SYSTEM",
            &[MANIFEST_AS_REG_SYSTEM],
        );
        assert_eq!(
            export(&software_after),
            export(&software_ref),
            "index {index} SOFTWARE"
        );
        assert_eq!(
            export(&system_after),
            export(&system_ref),
            "index {index} SYSTEM"
        );
        // And by value, as hivex reads them.
        assert_eq!(
            hivexget(
                &software_after,
                r"Policies\Microsoft\Windows\WindowsUpdate\AU",
                "NoAutoUpdate"
            ),
            "1"
        );
        assert_eq!(
            hivexget(&software_after, r"Contoso\Baseline", "Count"),
            "42"
        );
        assert_eq!(
            hivexget(
                &software_after,
                r"Microsoft\Windows NT\CurrentVersion",
                "UBR"
            ),
            "4460",
            "untouched values stay"
        );
        assert_eq!(
            hivexget(&system_after, r"ControlSet001\Services\Fax", "Start"),
            "4",
            "CurrentControlSet is the control set Select\\Current names"
        );
        let edition = if index == 1 {
            "Professional"
        } else {
            "Enterprise"
        };
        assert_eq!(
            hivexget(
                &software_after,
                r"Microsoft\Windows NT\CurrentVersion",
                "EditionID"
            ),
            edition,
            "each index keeps its own hive"
        );
    }

    // The run's results say what changed, per index.
    let shown = site.ois(&["image", "show", "golden", "--json"]).ok().json();
    let updates = shown["runs"][0]["updates"].as_array().expect("updates");
    assert_eq!(updates.len(), 2);
    for u in updates {
        let changes = u["registry"].as_array().expect("registry");
        assert!(
            changes.iter().any(
                |c| c["key"] == r"Policies\Microsoft\Windows\WindowsUpdate\AU"
                    && c["value"] == "NoAutoUpdate"
                    && c["action"] == "set"
            ),
            "{changes:?}"
        );
        assert!(
            changes
                .iter()
                .any(|c| c["key"] == r"Contoso\Legacy" && c["action"] == "deleted key"),
            "{changes:?}"
        );
    }
    let text = site.ois(&["image", "show", "golden"]).ok().stdout;
    assert!(
        text.contains(r"registry set SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU value "),
        "{text}"
    );
    let log = std::fs::read_to_string(shown["log"].as_str().expect("log")).expect("log");
    assert!(
        log.contains(r"deleted key SOFTWARE\Contoso\Legacy"),
        "{log}"
    );
}

#[test]
fn two_updates_changing_one_hive_in_a_run_both_land() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    let wim = image(&site);
    site.import_image(&wim, "golden");
    for (id, value) in [("OIS-REG-A", "A"), ("OIS-REG-B", "B")] {
        let dir = site.path(&format!("packages/{id}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("update.toml"),
            format!(
                "id = \"{id}\"\ntitle = \"t\"\narchitecture = \"x64\"\n[[registry]]\nhive = \"SOFTWARE\"\nkey = 'Contoso\\Settings'\nset = \"{value}\"\ntype = \"sz\"\ndata = \"from {id}\"\n"
            ),
        )
        .expect("manifest");
        site.import_update(&dir);
    }
    site.ois(&["service", "golden", "--all-applicable"]).ok();
    for index in 1..=2u32 {
        let hive = extract(
            &site,
            &wim,
            index,
            "/Windows/System32/config/SOFTWARE",
            &format!("out/{index}"),
        );
        assert_eq!(hivexget(&hive, r"Contoso\Settings", "A"), "from OIS-REG-A");
        assert_eq!(hivexget(&hive, r"Contoso\Settings", "B"), "from OIS-REG-B");
    }
}

fn refused_at_import(
    site: &TestSite,
    id: &str,
    registry: &str,
    reg_file: Option<&str>,
    reason: &str,
) {
    let dir = site.path(&format!("bad/{id}"));
    std::fs::create_dir_all(dir.join("payload")).expect("mkdir");
    std::fs::write(
        dir.join("update.toml"),
        format!("id = \"{id}\"\ntitle = \"t\"\narchitecture = \"x64\"\n{registry}"),
    )
    .expect("manifest");
    if let Some(text) = reg_file {
        std::fs::write(dir.join("payload/bad.reg"), text).expect("reg");
    }
    let run = site
        .ois(&["update", "import", dir.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains(reason), "{id}: {}", run.stderr);
    let listed = site.ois(&["update", "list", "--json"]).ok().json();
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .all(|u| u["id"] != id),
        "{id} was stored"
    );
}

#[test]
fn bad_registry_changes_are_refused_and_a_bad_hive_leaves_the_image_untouched() {
    if !tools_here() {
        return;
    }
    let site = TestSite::new();
    refused_at_import(
        &site,
        "OIS-BAD-HIVE",
        "[[registry]]\nhive = \"HARDWARE\"\nkey = 'X'\nset = \"v\"\ntype = \"dword\"\ndata = 1\n",
        None,
        "hive \"HARDWARE\" is not one of SOFTWARE",
    );
    refused_at_import(
        &site,
        "OIS-BAD-KEY",
        "[[registry]]\nhive = \"SOFTWARE\"\nkey = 'Contoso\\..\\Microsoft'\ndelete_key = true\n",
        None,
        "key \"Contoso\\\\..\\\\Microsoft\"",
    );
    refused_at_import(
        &site,
        "OIS-BAD-TYPE",
        "[[registry]]\nhive = \"SOFTWARE\"\nkey = 'Contoso'\nset = \"v\"\ntype = \"dword\"\ndata = \"one\"\n",
        None,
        "value \"v\" of Contoso",
    );
    refused_at_import(
        &site,
        "OIS-BAD-REG",
        "[[registry]]\nimport = \"payload/bad.reg\"\n",
        Some("Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso]\r\n\"v\"=dword:zz\r\n"),
        "line 4",
    );

    // An index whose SOFTWARE is not a hive: the run fails naming it; the image is unchanged.
    let wim = site.path("images/broken.wim");
    let tree = site.path("trees/broken");
    let config = tree.join("Windows/System32/config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(config.join("SOFTWARE"), b"this is not a registry hive").expect("hive");
    std::fs::create_dir_all(wim.parent().expect("parent")).expect("mkdir");
    run(
        "wimlib-imagex",
        &[
            "capture",
            tree.to_str().expect("utf8"),
            wim.to_str().expect("utf8"),
            "Broken",
        ],
    );
    run(
        "wimlib-imagex",
        &[
            "info",
            wim.to_str().expect("utf8"),
            "1",
            "--image-property",
            "WINDOWS/ARCH=9",
        ],
    );
    site.import_image(&wim, "broken");
    let dir = site.path("packages/OIS-REG-C");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("update.toml"),
        "id = \"OIS-REG-C\"\ntitle = \"t\"\narchitecture = \"x64\"\n[[registry]]\nhive = \"SOFTWARE\"\nkey = 'Contoso'\nset = \"v\"\ntype = \"dword\"\ndata = 1\n",
    )
    .expect("manifest");
    site.import_update(&dir);
    let original = std::fs::read(&wim).expect("wim");
    let failed = site
        .ois(&["service", "broken", "--updates", "OIS-REG-C"])
        .failed();
    assert!(
        failed
            .stderr
            .contains("Windows/System32/config/SOFTWARE in index 1 of"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        std::fs::read(&wim).expect("wim"),
        original,
        "byte-identical"
    );
}
