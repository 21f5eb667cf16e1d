//! ois reads an index's SOFTWARE hive (its build and the Windows packages Component Based
//! Servicing recorded) from hives hivex wrote, straight out of WIMs wimlib-imagex captured,
//! and refuses damaged or crafted hives with an error naming them, never a panic.

mod common;

use std::path::Path;
use std::process::Command;

use common::have_or_skip;
use common::hive::{
    dword, fix_checksum, get32, hive_from_reg, hivexget, key_cell, minimal_hive, put, put32,
    software_hive, sz, CBS_PACKAGES, CURRENT_VERSION, HBIN_START,
};
use ois::image::hive::{self, HiveError, HiveFacts, HivePackage, SOFTWARE_HIVE};
use ois::wim::Wim;

const ORIGIN: &str = "SOFTWARE of the test";

const ROLLUP: &str = "Package_for_RollupFix~31bf3856ad364e35~amd64~~22621.4460.1.10";
const STACK: &str = "Package_for_ServicingStack_4455~31bf3856ad364e35~amd64~~22621.4455.1.2";
const KB: &str = "Package_for_KB5044033~31bf3856ad364e35~amd64~~22621.4313.1.1";
const FEATURE: &str =
    "Microsoft-Windows-NetFx3-OnDemand-Package~31bf3856ad364e35~amd64~~10.0.22621.1";

fn tools() -> bool {
    have_or_skip("hivexregedit") && have_or_skip("hivexget")
}

/// A Windows 11 23H2 Enterprise hive: installed (0x70), staged (0x40), superseded (0x50) and
/// an installed-pending (0x80) package, listed out of order.
fn windows_11_hive(path: &Path) {
    software_hive(
        path,
        "22631",
        4460,
        "Enterprise",
        "23H2",
        &[(ROLLUP, 0x70), (FEATURE, 0x40), (STACK, 0x80), (KB, 0x50)],
    );
}

fn package(identity: &str, current_state: Option<u32>) -> HivePackage {
    HivePackage {
        identity: identity.to_string(),
        current_state,
    }
}

fn windows_11_facts() -> HiveFacts {
    HiveFacts {
        current_build: Some(22631),
        ubr: Some(4460),
        major: Some(10),
        minor: Some(0),
        edition_id: Some("Enterprise".into()),
        display_version: Some("23H2".into()),
        product_name: Some("Windows 10 Enterprise".into()),
        packages: vec![
            package(FEATURE, Some(0x40)),
            package(KB, Some(0x50)),
            package(ROLLUP, Some(0x70)),
            package(STACK, Some(0x80)),
        ],
    }
}

fn parse_file(path: &Path) -> Result<HiveFacts, HiveError> {
    hive::parse(&std::fs::read(path).expect("read hive"), ORIGIN)
}

#[test]
fn a_software_hive_gives_its_build_edition_and_packages_as_hivex_wrote_them() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("SOFTWARE");
    windows_11_hive(&path);
    let facts = parse_file(&path).expect("parse");
    assert_eq!(facts, windows_11_facts());
    // hivex, reading the same file, says the same.
    assert_eq!(hivexget(&path, CURRENT_VERSION, "UBR"), "4460");
    assert_eq!(hivexget(&path, CURRENT_VERSION, "EditionID"), "Enterprise");
    assert_eq!(
        hivexget(&path, &format!("{CBS_PACKAGES}\\{STACK}"), "CurrentState"),
        (0x80).to_string()
    );
}

#[test]
fn hive_lookups_ignore_case_as_windows_does() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("SOFTWARE");
    hive_from_reg(
        &path,
        &[
            (
                r"MICROSOFT\WINDOWS NT\currentversion",
                vec![sz("currentbuild", "26100"), dword("ubr", 2033)],
            ),
            (
                &format!(
                    r"microsoft\windows\currentversion\component based servicing\packages\{KB}"
                ),
                vec![dword("currentstate", 0x70)],
            ),
        ],
    );
    let facts = parse_file(&path).expect("parse");
    assert_eq!(facts.current_build, Some(26100));
    assert_eq!(facts.ubr, Some(2033));
    assert_eq!(facts.packages, vec![package(KB, Some(0x70))]);
}

#[test]
fn a_hive_without_current_version_or_packages_gives_no_facts() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    minimal_hive(&empty);
    assert_eq!(parse_file(&empty).expect("parse"), HiveFacts::default());

    let partial = dir.path().join("partial");
    hive_from_reg(
        &partial,
        &[
            (
                r"Microsoft\Windows NT",
                vec![sz("Note", "no CurrentVersion")],
            ),
            (
                r"Microsoft\Windows\CurrentVersion\Component Based Servicing",
                vec![],
            ),
        ],
    );
    assert_eq!(parse_file(&partial).expect("parse"), HiveFacts::default());

    let no_packages = dir.path().join("no-packages");
    hive_from_reg(&no_packages, &[(CBS_PACKAGES, vec![])]);
    assert_eq!(
        parse_file(&no_packages).expect("parse"),
        HiveFacts::default()
    );
}

#[test]
fn wrongly_typed_values_are_none() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("SOFTWARE");
    hive_from_reg(
        &path,
        &[
            (
                CURRENT_VERSION,
                vec![
                    dword("CurrentBuild", 22631),
                    sz("UBR", "4460"),
                    r#""CurrentMajorVersionNumber"=hex(b):0a,00,00,00,00,00,00,00"#.into(),
                    r#""CurrentMinorVersionNumber"=hex(4):00,00"#.into(),
                    r#""EditionID"=hex(2):45,00,00,00"#.into(),
                    dword("DisplayVersion", 23),
                    sz("ProductName", ""),
                ],
            ),
            (
                &format!("{CBS_PACKAGES}\\{KB}"),
                vec![sz("CurrentState", "112")],
            ),
            (
                &format!("{CBS_PACKAGES}\\{ROLLUP}"),
                vec![dword("CurrentState", 0x70)],
            ),
            (&format!("{CBS_PACKAGES}\\{STACK}"), vec![]),
        ],
    );
    let facts = parse_file(&path).expect("parse");
    assert_eq!(
        facts,
        HiveFacts {
            product_name: Some(String::new()),
            packages: vec![
                package(KB, None),
                package(ROLLUP, Some(0x70)),
                package(STACK, None)
            ],
            ..HiveFacts::default()
        }
    );

    let odd_build = dir.path().join("odd-build");
    hive_from_reg(
        &odd_build,
        &[(CURRENT_VERSION, vec![sz("CurrentBuild", "22631.4460")])],
    );
    assert_eq!(parse_file(&odd_build).expect("parse").current_build, None);
}

/// Asserts `bytes` are refused as damaged, naming the origin; returns the message.
fn refused(bytes: &[u8], what: &str) -> String {
    match hive::parse(bytes, ORIGIN) {
        Err(e @ HiveError::Damaged { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{ORIGIN} is not a readable registry hive: ")),
                "{what}: {text}"
            );
            text
        }
        other => panic!("{what}: expected Damaged, got {other:?}"),
    }
}

/// Deterministic noise.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn windows_11_bytes(dir: &Path) -> Vec<u8> {
    let path = dir.join("SOFTWARE");
    windows_11_hive(&path);
    std::fs::read(&path).expect("read hive")
}

#[test]
fn truncated_or_random_bytes_are_refused_naming_the_hive() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    for len in [
        0,
        3,
        100,
        4095,
        4096,
        4100,
        6000,
        good.len() / 2,
        good.len() - 1,
    ] {
        refused(&good[..len], &format!("first {len} bytes"));
    }
    for seed in 1..=8 {
        let text = refused(&noise(seed, 64 << 10), &format!("noise {seed}"));
        assert!(text.contains(r#"signature "regf""#), "{text}");
        let mut regf = noise(seed, 64 << 10);
        put(&mut regf, 0, b"regf");
        refused(&regf, &format!("regf and noise {seed}"));
    }
}

#[test]
fn a_flipped_byte_in_the_base_block_is_refused() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    // Fields nt-hive checks before the checksum are refused for what they say.
    for at in [0x00, 0x14, 0x18, 0x1c, 0x20, 0x28, 0x2c] {
        let mut bad = good.clone();
        bad[at] ^= 0x41;
        refused(&bad, &format!("byte {at:#x} flipped"));
    }
    // A flipped sequence number is damage, not a hive left dirty by Windows.
    for at in [0x04, 0x08, 0x24, 0x30, 0x100, 0x1fc] {
        let mut bad = good.clone();
        bad[at] ^= 0x41;
        let text = refused(&bad, &format!("byte {at:#x} flipped"));
        assert!(text.contains("checksum"), "byte {at:#x}: {text}");
    }
}

#[test]
fn a_garbage_hbin_is_refused() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    for seed in 1..=16 {
        let mut bad = good.clone();
        let garbage = noise(seed, 0x1000);
        put(&mut bad, HBIN_START, &garbage);
        refused(&bad, &format!("first hbin garbage {seed}"));
    }
}

#[test]
fn random_damage_inside_the_hbins_is_read_or_refused() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    for seed in 1..=400u64 {
        let mut bad = good.clone();
        let picks = noise(seed, 16);
        for pair in picks.chunks_exact(4) {
            let at = HBIN_START
                + (u16::from_le_bytes([pair[0], pair[1]]) as usize) % (good.len() - HBIN_START);
            bad[at] ^= pair[2] | 1;
        }
        match hive::parse(&bad, ORIGIN) {
            Ok(_) | Err(HiveError::Damaged { .. }) => {}
            Err(other) => panic!("seed {seed}: {other:?}"),
        }
    }
}

/// The same hive with its base block changed by `change` and its checksum made right again.
fn with_base_block(good: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = good.to_vec();
    change(&mut bytes);
    fix_checksum(&mut bytes);
    bytes
}

#[test]
fn cell_offsets_pointing_outside_the_hive_are_refused_without_a_panic() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    for root in [0x7fff_fff0, good.len() as u32, 0x1001, u32::MAX] {
        let bad = with_base_block(&good, |b| put32(b, 0x24, root));
        refused(&bad, &format!("root cell at {root:#x}"));
    }
    // A key in the Packages list at 0xFFFFFFFF, the offset nt-hive asserts against.
    let packages = key_cell(&good, "Packages");
    let leaf = HBIN_START + get32(&good, packages + 0x20) as usize;
    for offset in [u32::MAX, 0x1000_0000, 0] {
        let mut bad = good.clone();
        put32(&mut bad, leaf + 8, offset);
        refused(&bad, &format!("package key at {offset:#x}"));
    }
    // A root cell of size 0 (nt-hive issue #7: an overflow in a debug build).
    let root = HBIN_START + get32(&good, 0x24) as usize;
    let mut bad = good.clone();
    put32(&mut bad, root, 0);
    refused(&bad, "root cell of size 0");
}

/// Appends a 4 KiB hbin holding one used cell with `data`; returns the cell's offset.
fn append_cell(hive: &mut Vec<u8>, data: &[u8]) -> u32 {
    let hbins = get32(hive, 0x28) as usize;
    assert_eq!(hive.len(), HBIN_START + hbins, "hivex wrote hbins only");
    let mut hbin = vec![0u8; 0x1000];
    put(&mut hbin, 0, b"hbin");
    put32(&mut hbin, 4, hbins as u32);
    put32(&mut hbin, 8, 0x1000);
    let size = (4 + data.len()).div_ceil(8) * 8;
    put32(&mut hbin, 0x20, (-(size as i32)) as u32);
    put(&mut hbin, 0x24, data);
    put32(&mut hbin, 0x20 + size, (0x1000 - 0x20 - size) as u32);
    hive.extend_from_slice(&hbin);
    put32(hive, 0x28, (hbins + 0x1000) as u32);
    fix_checksum(hive);
    (hbins + 0x20) as u32
}

#[test]
fn subkey_lists_that_repeat_are_refused() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    let packages = key_cell(&good, "Packages");
    let leaf = get32(&good, packages + 0x20);

    // An index root listing the Packages leaf 600 times: 2,400 keys from 4.
    let mut looped = good.clone();
    let mut index_root = b"ri".to_vec();
    index_root.extend_from_slice(&600u16.to_le_bytes());
    for _ in 0..600 {
        index_root.extend_from_slice(&leaf.to_le_bytes());
    }
    let at = append_cell(&mut looped, &index_root);
    put32(&mut looped, packages + 0x20, at);
    let text = refused(&looped, "index root repeating a leaf");
    assert!(
        text.contains("point at the same cells again and again"),
        "{text}"
    );
    assert!(text.contains(CBS_PACKAGES), "{text}");

    // The leaf naming its first key twice.
    let mut twice = good.clone();
    let leaf = HBIN_START + leaf as usize;
    let first = get32(&twice, leaf + 8);
    put32(&mut twice, leaf + 16, first);
    let text = refused(&twice, "a key listed twice");
    assert!(text.contains(&format!("lists {FEATURE} twice")), "{text}");
}

#[test]
fn a_hive_not_cleanly_unloaded_is_refused_saying_so() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = windows_11_bytes(dir.path());
    let primary = get32(&good, 4);
    let dirty = with_base_block(&good, |b| put32(b, 4, primary + 1));
    let err = hive::parse(&dirty, ORIGIN).expect_err("dirty");
    assert!(
        matches!(err, HiveError::NotCleanlyUnloaded { secondary, .. } if secondary == primary),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{ORIGIN} was not cleanly unloaded (its sequence numbers {} and {primary} differ)",
            primary + 1
        )),
        "{text}"
    );
    assert!(text.contains("captured from a running system"), "{text}");
    assert!(text.contains("Windows/servicing/Packages"), "{text}");
}

fn imagex(args: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .args(args)
        .output()
        .expect("run wimlib-imagex");
    assert!(
        out.status.success(),
        "wimlib-imagex {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn read_takes_the_hive_straight_from_each_index_of_a_wim() {
    if !tools() || !have_or_skip("wimlib-imagex") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let with_hive = dir.path().join("full");
    let config = with_hive.join("Windows/System32/config");
    std::fs::create_dir_all(&config).expect("mkdir");
    windows_11_hive(&config.join("SOFTWARE"));
    std::fs::write(config.join("SYSTEM"), b"not read").expect("write");
    let bare = dir.path().join("bare");
    std::fs::create_dir_all(bare.join("Windows/System32")).expect("mkdir");
    std::fs::write(bare.join("Windows/System32/winload.exe"), b"MZ").expect("write");
    let damaged = dir.path().join("damaged");
    std::fs::create_dir_all(damaged.join("Windows/System32/config")).expect("mkdir");
    std::fs::write(
        damaged.join("Windows/System32/config/SOFTWARE"),
        noise(7, 8192),
    )
    .expect("write");

    let wim = dir.path().join("install.wim");
    let wim_arg = wim.to_str().expect("utf8");
    imagex(&[
        "capture",
        with_hive.to_str().expect("utf8"),
        wim_arg,
        "Enterprise",
    ]);
    imagex(&["append", bare.to_str().expect("utf8"), wim_arg, "WinPE"]);
    imagex(&[
        "append",
        damaged.to_str().expect("utf8"),
        wim_arg,
        "Damaged",
    ]);

    let opened = Wim::open(&wim, false).expect("open");
    assert_eq!(
        hive::read(&opened, 1).expect("index 1"),
        Some(windows_11_facts())
    );
    assert_eq!(hive::read(&opened, 2).expect("index 2"), None);
    let err = hive::read(&opened, 3).expect_err("index 3");
    assert!(matches!(err, HiveError::Damaged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{SOFTWARE_HIVE} in index 3 of {} is not a readable registry hive",
            wim.display()
        )),
        "{text}"
    );
}
