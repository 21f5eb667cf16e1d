//! The content library against hostile or unusual packages and settings (issue 18): CAB
//! layouts that cannot be streamed, packages that expand past the configured bound, ids that
//! are not names, repeated payload placements.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestSite;
use ois::sample::{write_cab, write_package};

const ONE_FILE: &str = r#"id = "KB8100001"
title = "2026-11 Cumulative Update"
architecture = "x64"
[[change]]
add = "payload/ntoskrnl.exe"
at = "Windows/System32/ntoskrnl.exe"
"#;

/// Every file under the content library (the empty incoming area does not count).
fn library_files(site: &TestSite) -> Vec<PathBuf> {
    common::files_under(&site.root().join("ContentLibrary"))
}

/// Nothing of a refused import is in the content library or the site database.
fn assert_nothing_stored(site: &TestSite) {
    let files = library_files(site);
    assert!(files.is_empty(), "{files:?}");
    assert!(updates(site).is_empty());
}

fn updates(site: &TestSite) -> Vec<String> {
    let v = site.ois(&["update", "list", "--json"]).ok().json();
    v.as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

/// A CAB of the package in `dir` made by gcab (MSZIP), holding `names`.
fn gcab(dir: &Path, cab: &Path, names: &[&str]) {
    let status = std::process::Command::new("gcab")
        .current_dir(dir)
        .args(["-c", "-z"])
        .arg(cab)
        .args(names)
        .status()
        .expect("gcab");
    assert!(status.success(), "gcab failed");
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Marks a single cabinet as one part of a set, as makecab writes one: the header flag and
/// the names of the other cabinet and disk after the fixed header, every offset shifted.
fn mark_as_set_part(cab: &[u8], flag: u16) -> Vec<u8> {
    let mut b = cab.to_vec();
    assert_eq!(&b[..4], b"MSCF");
    assert_eq!(u16_at(&b, 30) & 4, 0, "no reserve area in a gcab CAB");
    let names: &[u8] = if flag == 3 {
        b"prev.cab\0disk1\0next.cab\0disk3\0"
    } else {
        b"other.cab\0disk2\0"
    };
    let shift = names.len() as u32;
    let put = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let (size, files) = (u32_at(&b, 8), u32_at(&b, 16));
    put(&mut b, 8, size + shift);
    put(&mut b, 16, files + shift);
    let flags = u16_at(&b, 30) | flag;
    b[30..32].copy_from_slice(&flags.to_le_bytes());
    for k in 0..usize::from(u16_at(&b, 26)) {
        let at = 36 + 8 * k;
        let start = u32_at(&b, at);
        put(&mut b, at, start + shift);
    }
    b.splice(36..36, names.iter().copied());
    b
}

/// The CAB with the declared (uncompressed) size of entry `name` replaced.
fn declare_size(cab: &[u8], name: &str, size: u32) -> Vec<u8> {
    let mut b = cab.to_vec();
    let mut at = u32_at(&b, 16) as usize;
    for _ in 0..u16_at(&b, 28) {
        let len = b[at + 16..].iter().position(|&c| c == 0).expect("name");
        if b[at + 16..at + 16 + len] == *name.replace('/', "\\").as_bytes() {
            b[at..at + 4].copy_from_slice(&size.to_le_bytes());
            return b;
        }
        at += 16 + len + 1;
    }
    panic!("{name} is not in the CAB");
}

#[test]
fn a_part_of_a_multi_cabinet_set_is_refused_at_once_naming_the_cab() {
    if !common::have_or_skip("gcab") {
        return;
    }
    let site = TestSite::new();
    let dir = write_package(
        &site.path("pkg"),
        ONE_FILE,
        // 64 MiB of zeros: a few KiB of CAB that used to be read whole into memory.
        &[("payload/ntoskrnl.exe", vec![0u8; 64 << 20])],
    )
    .expect("pkg");
    let whole = site.path("whole.cab");
    gcab(&dir, &whole, &["update.toml", "payload/ntoskrnl.exe"]);
    let bytes = std::fs::read(&whole).expect("read cab");
    for (flag, name, says) in [
        (2u16, "next.cab", "it continues in a next cabinet"),
        (1, "prev.cab", "it continues a previous cabinet"),
        (3, "both.cab", "continues in a next one"),
    ] {
        let part = site.path(name);
        std::fs::write(&part, mark_as_set_part(&bytes, flag)).expect("write");
        let started = Instant::now();
        let run = site
            .ois(&["update", "import", part.to_str().expect("utf8")])
            .failed();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused before reading the payload ({:?})",
            started.elapsed()
        );
        assert!(
            run.stderr.contains(&format!(
                "{} is one part of a multi-cabinet set",
                part.display()
            )),
            "{name}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(says), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("must be a single CAB file"),
            "{}",
            run.stderr
        );
    }
    assert_nothing_stored(&site);
    // The same package as one cabinet imports, streamed.
    site.ois(&["update", "import", whole.to_str().expect("utf8")])
        .ok();
    assert_eq!(updates(&site), ["KB8100001"]);
}

#[test]
fn a_package_expanding_past_the_configured_bound_is_refused_and_leaves_nothing() {
    if !common::have_or_skip("gcab") {
        return;
    }
    let site = TestSite::new();
    // About 1 MiB.
    site.configure("import_max_expanded_gib = 0.001");
    let limit = (0.001 * (1u64 << 30) as f64) as u64;
    let dir = write_package(
        &site.path("pkg"),
        ONE_FILE,
        &[("payload/ntoskrnl.exe", vec![0u8; 4 << 20])],
    )
    .expect("pkg");
    let cab = site.path("zeros.cab");
    gcab(&dir, &cab, &["update.toml", "payload/ntoskrnl.exe"]);
    assert!(std::fs::metadata(&cab).expect("cab").len() < 64 << 10);
    let run = site
        .ois(&["update", "import", cab.to_str().expect("utf8")])
        .failed();
    assert!(
        run.stderr.contains(&format!(
            "package {} declares {} bytes of payload, more than import_max_expanded_gib ({limit} bytes, site.toml)",
            cab.display(),
            4 << 20
        )),
        "{}",
        run.stderr
    );

    // Within the bound per file, but added at so many places that the image would hold more.
    let spread = format!(
        "{}{}",
        ONE_FILE,
        (0..3)
            .map(|k| format!(
                "[[change]]\nadd = \"payload/ntoskrnl.exe\"\nat = \"Windows/copy{k}.exe\"\n"
            ))
            .collect::<String>()
    );
    let dir = write_package(
        &site.path("spread"),
        &spread,
        &[("payload/ntoskrnl.exe", vec![7u8; 400 << 10])],
    )
    .expect("pkg");
    let run = site
        .ois(&["update", "import", dir.to_str().expect("utf8")])
        .failed();
    assert!(
        run.stderr.contains(&format!(
            "adds {} bytes to an image (each target counted)",
            4 * (400 << 10)
        )),
        "{}",
        run.stderr
    );

    // A declared size that is a lie is found out while writing: the entry is truncated.
    let bytes = std::fs::read(&cab).expect("read");
    let lying = site.path("lying.cab");
    std::fs::write(
        &lying,
        declare_size(&bytes, "payload/ntoskrnl.exe", (4 << 20) + 4096),
    )
    .expect("write");
    site.configure("import_max_expanded_gib = 1");
    let run = site
        .ois(&["update", "import", lying.to_str().expect("utf8")])
        .failed();
    assert!(
        run.stderr.contains(&lying.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);

    assert_nothing_stored(&site);
}

#[test]
fn a_cab_made_by_the_cab_crate_still_streams_every_entry() {
    let site = TestSite::new();
    let manifest = format!("{ONE_FILE}[[change]]\nadd = \"payload/more\"\nat = \"Windows/more\"\n");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("update.toml".into(), manifest.into_bytes()),
        ("payload/ntoskrnl.exe".into(), b"kernel".to_vec()),
    ];
    for k in 0..300 {
        files.push((format!("payload/more/f{k}.bin"), vec![k as u8; 5000 + k]));
    }
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let cab = site.path("many.cab");
    write_cab(&cab, &refs).expect("cab");
    site.ois(&["update", "import", cab.to_str().expect("utf8")])
        .ok();
    assert_eq!(updates(&site), ["KB8100001"]);
    // One store file per distinct content.
    let stored = library_files(&site)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "files"))
        .count();
    assert_eq!(stored, 301);
}

const PLACED_TWICE: &str = r#"id = "KB8100006"
title = "One payload file at several targets"
architecture = "x64"
[[change]]
add = "payload/x.dll"
at = "Windows/System32/x.dll"
[[change]]
add = "payload/x.dll"
at = "Windows/SysWOW64/x.dll"
[[change]]
add = "payload/inf"
at = "Windows/INF"
[[change]]
add = "payload/inf"
at = "Windows/INF.bak"
[[change]]
add = "payload/y.dll"
at = "Windows/y.dll"
"#;

/// Services `image` with a package placing one file at two targets, a folder at two targets,
/// and a second file of the same content; then checks, on the image as wimlib-imagex applies
/// it, that every placement is a file of its own with the package's bytes.
fn service_and_check_placements(site: &TestSite, image: &str, wim: &Path) {
    let x = b"x.dll bytes ".repeat(3000);
    let pkg = write_package(
        &site.path(&format!("placed-{image}")),
        PLACED_TWICE,
        &[
            ("payload/x.dll", x.clone()),
            ("payload/y.dll", x.clone()),
            ("payload/inf/a.inf", b"[a]".to_vec()),
            ("payload/inf/b.inf", b"[b]".to_vec()),
        ],
    )
    .expect("pkg");
    site.ois(&["update", "import", pkg.to_str().expect("utf8")])
        .ok();
    site.ois(&["service", image, "--updates", "KB8100006"]).ok();
    let applied = site.path(&format!("applied-{image}"));
    let status = std::process::Command::new("wimlib-imagex")
        .arg("apply")
        .arg(wim)
        .arg("1")
        .arg(&applied)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("wimlib-imagex");
    assert!(status.success());
    use std::os::unix::fs::MetadataExt;
    let mut inodes = std::collections::HashSet::new();
    for (path, bytes) in [
        ("Windows/System32/x.dll", &x[..]),
        ("Windows/SysWOW64/x.dll", &x[..]),
        ("Windows/y.dll", &x[..]),
        ("Windows/INF/a.inf", b"[a]"),
        ("Windows/INF.bak/a.inf", b"[a]"),
        ("Windows/INF/b.inf", b"[b]"),
        ("Windows/INF.bak/b.inf", b"[b]"),
    ] {
        let file = applied.join(path);
        let meta = std::fs::metadata(&file).expect(path);
        assert_eq!(meta.nlink(), 1, "{image}: {path} is a hard link");
        assert!(inodes.insert(meta.ino()), "{image}: {path} shares an inode");
        assert_eq!(std::fs::read(&file).expect(path), bytes, "{image}: {path}");
    }
}

#[test]
fn one_payload_file_added_at_several_targets_stays_separate_files_in_the_image() {
    if !common::have_or_skip("wimlib-imagex") {
        return;
    }
    // A compressed image: the payload is read in place from the content library.
    let site = TestSite::new();
    let wim = site.golden_image("golden");
    service_and_check_placements(&site, "golden", &wim);

    // An uncompressed image: the payload is copied into the stage.
    let tree = site.path("plain-tree");
    ois::sample::write_tree(
        &tree,
        &[("Windows/System32/kernel32.dll", b"kernel32".to_vec())],
    )
    .expect("tree");
    let plain = site.path("images/plain.wim");
    ois::sample::build_wim(
        &plain,
        ois::wim::Compression::None,
        &[ois::sample::IndexSpec {
            name: "Windows 11 Pro",
            edition: "Professional",
            architecture: ois::library::Architecture::X64,
            build: 22631,
            tree: &tree,
        }],
    )
    .expect("wim");
    site.ois(&[
        "image",
        "import",
        plain.to_str().expect("utf8"),
        "--name",
        "plain",
    ])
    .ok();
    service_and_check_placements(&site, "plain", &plain);
}

#[test]
fn ids_that_are_not_folder_names_are_refused_naming_the_package() {
    let site = TestSite::new();
    for (n, id) in [".", "..", "con", "aux.txt", "LPT1", "KB1."]
        .iter()
        .enumerate()
    {
        // Two files of one content: the second is kept in repeated/<id>/, which `..` escaped.
        let manifest = format!(
            "{}[[change]]\nadd = \"payload/copy.exe\"\nat = \"Windows/copy.exe\"\n",
            ONE_FILE.replace("KB8100001", id)
        );
        let dir = write_package(
            &site.path(&format!("pkg{n}")),
            &manifest,
            &[
                ("payload/ntoskrnl.exe", b"same".to_vec()),
                ("payload/copy.exe", b"same".to_vec()),
            ],
        )
        .expect("pkg");
        let run = site
            .ois(&["update", "import", dir.to_str().expect("utf8")])
            .failed();
        assert!(
            run.stderr
                .contains(&format!("package {} is not valid", dir.display())),
            "{id}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("id {id:?}")) && run.stderr.contains("choose another id"),
            "{id}: {}",
            run.stderr
        );
    }
    assert_nothing_stored(&site);
}

#[test]
fn concurrent_imports_of_one_update_or_image_never_fail_on_the_database() {
    let site = TestSite::new();
    let dir = write_package(
        &site.path("pkg"),
        ONE_FILE,
        &[("payload/ntoskrnl.exe", b"kernel".repeat(10_000))],
    )
    .expect("pkg");
    let wim = site.path("images/shared.wim");
    let scratch = tempfile::tempdir().expect("tempdir");
    ois::sample::golden_image(scratch.path(), &wim).expect("golden image");
    let pkg = dir.to_str().expect("utf8");
    let image = wim.to_str().expect("utf8");
    for round in 0..3 {
        let mut children = Vec::new();
        for k in 0..4 {
            let name = format!("update-{round}-{k}");
            children.push((name.clone(), site.spawn(&name, &["update", "import", pkg])));
            let name = format!("image-{round}-{k}");
            children.push((
                name.clone(),
                site.spawn(&name, &["image", "import", image, "--name", "shared"]),
            ));
        }
        let mut images = 0;
        for (name, mut child) in children {
            let ok = child.wait().expect("wait").success();
            let output = site.output_of(&name);
            assert!(!output.contains("constraint"), "{name}: {output}");
            if name.starts_with("update") {
                assert!(ok, "the same package imported at once: {name}: {output}");
            } else if ok {
                images += 1;
            } else {
                assert!(
                    output.contains("already registered")
                        || output.contains("was registered by another process"),
                    "{name}: {output}"
                );
                assert!(output.contains("shared"), "names the image: {output}");
            }
        }
        assert_eq!(images, usize::from(round == 0), "registered once");
    }
    assert_eq!(updates(&site), ["KB8100001"]);
}

#[test]
fn a_rename_onto_an_existing_path_fails_its_update_unless_the_package_says_replace() {
    let (site, wim, _) = TestSite::with_golden_image();
    let before = common::index_files(&wim, 1);
    let onto = r#"id = "KB8100013"
title = "Rename onto an existing file"
architecture = "x64"
[[change]]
rename = "Windows/Temp/legacy.log"
to = "Windows/System32/ntoskrnl.exe"
"#;
    let replacing = r#"id = "KB8100014"
title = "Rename that replaces"
architecture = "x64"
[[change]]
rename = "Windows/System32/old.dll"
to = "Windows/System32/KERNEL32.dll"
replace = true
"#;
    for (name, manifest) in [("onto", onto), ("replacing", replacing)] {
        let dir = write_package(&site.path(name), manifest, &[]).expect("pkg");
        site.ois(&["update", "import", dir.to_str().expect("utf8")])
            .ok();
    }
    let run = site
        .ois(&[
            "service",
            "golden",
            "--updates",
            "KB8100013,KB8100014",
            "--continue-on-error",
            "--json",
        ])
        .failed();
    let report = run.json();
    assert_eq!(report["status"], "Failed", "{report}");
    let failed = report["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["id"], "KB8100013");
    let error = failed[0]["error"].as_str().expect("error");
    assert!(
        error.contains("rename Windows/Temp/legacy.log to Windows/System32/ntoskrnl.exe: Windows/System32/ntoskrnl.exe already exists in index")
            && error.contains("replace = true"),
        "{error}"
    );
    let after = common::index_files(&wim, 1);
    assert_eq!(
        after.get("Windows/System32/ntoskrnl.exe"),
        before.get("Windows/System32/ntoskrnl.exe"),
        "the refused rename overwrote nothing"
    );
    assert!(after.contains_key("Windows/Temp/legacy.log"));
    let replaced = after
        .iter()
        .find(|(p, _)| p.eq_ignore_ascii_case("Windows/System32/kernel32.dll"))
        .map(|(_, b)| b);
    assert_eq!(
        replaced,
        before.get("Windows/System32/old.dll"),
        "replace = true overwrote it"
    );
    assert!(!after.contains_key("Windows/System32/old.dll"));

    // A UNC target is refused at import, as a drive path is.
    let unc = write_package(
        &site.path("unc"),
        &ONE_FILE.replace(
            "Windows/System32/ntoskrnl.exe",
            "\\\\\\\\server\\\\share\\\\x",
        ),
        &[("payload/ntoskrnl.exe", b"k".to_vec())],
    )
    .expect("pkg");
    let run = site
        .ois(&["update", "import", unc.to_str().expect("utf8")])
        .failed();
    assert!(run.stderr.contains("UNC"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&unc.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn a_damaged_library_file_is_refused_naming_the_file() {
    let site = TestSite::new();
    site.golden_image("golden");
    let kernel = b"patched kernel ".repeat(4000);
    let dir = write_package(
        &site.path("pkg"),
        ONE_FILE,
        &[("payload/ntoskrnl.exe", kernel.clone())],
    )
    .expect("pkg");
    site.ois(&["update", "import", dir.to_str().expect("utf8")])
        .ok();
    let sha = common::sha256(&kernel);
    let victim = site
        .root()
        .join("ContentLibrary/files")
        .join(&sha[..2])
        .join(&sha);
    let mut bytes = std::fs::read(&victim).expect("stored");
    bytes[100] ^= 1;
    std::fs::write(&victim, bytes).expect("damage");
    let out = site
        .ois(&["service", "golden", "--updates", "KB8100001"])
        .failed()
        .all_output();
    assert!(
        out.contains(&format!(
            "{} (payload/ntoskrnl.exe of update KB8100001)",
            victim.display()
        )),
        "{out}"
    );
    assert!(out.contains("the content library is damaged"), "{out}");
}
