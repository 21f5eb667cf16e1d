//! ois changes registry hives hivex wrote (set, delete, create; from ops or a .reg file) into
//! exactly what `hivexregedit --merge` makes of the same changes, read back by hivexget,
//! `hivexregedit --export` and ois's own nt-hive reader; and refuses damaged, dirty or
//! non-hive files and changes it cannot make safely, leaving the input as it was and no
//! output behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::have_or_skip;
use common::hive::{
    dword, fix_checksum, get32, hive_from_reg, hivexget, minimal_hive, put, put32, software_hive,
    sz, CBS_PACKAGES, CURRENT_VERSION,
};
use ois::registry::{self, Applied, Hive, RegistryError, RegistryOp, ValueData};

const ORIGIN: &str = "Windows/System32/config/SOFTWARE in index 1 of test.wim";
const SOFTWARE_PREFIX: &str = r"HKEY_LOCAL_MACHINE\SOFTWARE";
const SYSTEM_PREFIX: &str = r"HKEY_LOCAL_MACHINE\SYSTEM";

fn tools() -> bool {
    have_or_skip("hivexregedit") && have_or_skip("hivexget")
}

/// `hivexregedit --merge` of `reg` (a .reg text whose keys start with `prefix`) into `hive`.
fn merge(hive: &Path, reg: &str, prefix: &str) {
    let file = hive.with_extension("merge.reg");
    std::fs::write(&file, reg).expect("write .reg");
    common::hive::hivex_merge(hive, &file, prefix);
    std::fs::remove_file(&file).expect("remove .reg");
}

/// `hivexregedit --export` of the whole hive: every key, and every value as type and bytes.
fn export(hive: &Path) -> String {
    let out = Command::new("hivexregedit")
        .arg("--export")
        .arg(hive)
        .arg("\\")
        .output()
        .expect("run hivexregedit");
    assert!(
        out.status.success(),
        "hivexregedit --export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // hivexregedit prints names as Latin-1 bytes (data is all hex).
    out.stdout.iter().map(|&b| char::from(b)).collect()
}

/// `01,ab,…` as a .reg file writes bytes.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn hex_of(value: &ValueData) -> String {
    hex(&value.to_raw().1)
}

/// A copy of `hive` at `to`, for a peer tool to change the same starting point.
fn copy(hive: &Path, to: &Path) -> PathBuf {
    std::fs::copy(hive, to).expect("copy hive");
    to.to_path_buf()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn set(key: &str, name: &str, value: ValueData) -> RegistryOp {
    RegistryOp::SetValue {
        hive: Hive::Software,
        key: key.into(),
        name: name.into(),
        value,
    }
}

fn applied(
    key: &str,
    value: Option<&str>,
    action: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> Applied {
    Applied {
        hive: Hive::Software,
        key: key.into(),
        value: value.map(Into::into),
        action: action.into(),
        before: before.map(Into::into),
        after: after.map(Into::into),
    }
}

const AU: &str = r"Policies\Microsoft\Windows\WindowsUpdate\AU";
const APP: &str = r"Vendor\App";

/// A SOFTWARE hive with a Windows Update policy, a key to delete and an application's key.
fn policy_hive(path: &Path) {
    hive_from_reg(
        path,
        &[
            (
                AU,
                vec![
                    dword("NoAutoUpdate", 0),
                    dword("AUOptions", 3),
                    sz("Keep", "keep me"),
                ],
            ),
            (r"Policies\Old\Sub", vec![dword("x", 1)]),
            (APP, vec![sz("Version", "1.0"), sz("Obsolete", "yes")]),
        ],
    );
}

#[test]
fn ops_set_delete_and_create_exactly_what_hivexregedit_makes_of_the_same_changes() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    policy_hive(&input);
    let original = std::fs::read(&input).expect("read input");
    let output = dir.path().join("SOFTWARE.new");

    let path = ValueData::ExpandSz(r"%ProgramFiles%\App".into());
    let list = ValueData::MultiSz(vec!["one".into(), "two".into()]);
    let big = ValueData::Qword(0x1_0000_0002);
    let blob = ValueData::Binary((0..40).map(|i| (i * 7) as u8).collect());
    let ops = vec![
        // Another case than stored: the value keeps its name, as on Windows.
        set(AU, "noautoupdate", ValueData::Dword(1)),
        set(AU, "AUOptions", ValueData::Dword(3)),
        set(r"Policies\New\Deep", "Path", path.clone()),
        set(APP, "", ValueData::Sz("default text".into())),
        set(APP, "List", list.clone()),
        set(APP, "Big", big.clone()),
        set(APP, "Blob", blob.clone()),
        RegistryOp::DeleteValue {
            hive: Hive::Software,
            key: APP.into(),
            name: "Obsolete".into(),
        },
        RegistryOp::DeleteValue {
            hive: Hive::Software,
            key: APP.into(),
            name: "Missing".into(),
        },
        RegistryOp::DeleteKey {
            hive: Hive::Software,
            key: r"Policies\Old".into(),
        },
        RegistryOp::DeleteKey {
            hive: Hive::Software,
            key: r"Policies\Nope".into(),
        },
        RegistryOp::CreateKey {
            hive: Hive::Software,
            key: r"Policies\Empty".into(),
        },
        RegistryOp::CreateKey {
            hive: Hive::Software,
            key: "vendor".into(),
        },
    ];
    let done = registry::apply(&input, &output, &ops, ORIGIN).expect("apply");
    assert_eq!(
        done,
        vec![
            applied(
                AU,
                Some("noautoupdate"),
                "set",
                Some("dword:0x00000000"),
                Some("dword:0x00000001")
            ),
            applied(
                AU,
                Some("AUOptions"),
                "unchanged",
                Some("dword:0x00000003"),
                Some("dword:0x00000003")
            ),
            applied(
                r"Policies\New\Deep",
                Some("Path"),
                "set",
                None,
                Some(r#"expand_sz:"%ProgramFiles%\\App""#)
            ),
            applied(APP, Some(""), "set", None, Some(r#"sz:"default text""#)),
            applied(
                APP,
                Some("List"),
                "set",
                None,
                Some(r#"multi_sz:["one", "two"]"#)
            ),
            applied(
                APP,
                Some("Big"),
                "set",
                None,
                Some("qword:0x0000000100000002")
            ),
            applied(APP, Some("Blob"), "set", None, Some(&blob.display())),
            applied(
                APP,
                Some("Obsolete"),
                "deleted value",
                Some(r#"sz:"yes""#),
                None
            ),
            applied(APP, Some("Missing"), "absent", None, None),
            applied(r"Policies\Old", None, "deleted key", None, None),
            applied(r"Policies\Nope", None, "absent", None, None),
            applied(r"Policies\Empty", None, "created key", None, None),
            applied("vendor", None, "unchanged", None, None),
        ]
    );
    assert_eq!(
        std::fs::read(&input).expect("input"),
        original,
        "input untouched"
    );
    assert_eq!(
        names_in(dir.path()),
        vec!["SOFTWARE", "SOFTWARE.new", "SOFTWARE.reg"],
        "no temporary file left (SOFTWARE.reg made the input)"
    );

    // hivex reads back what was set, and what was not touched, as it was.
    assert_eq!(hivexget(&output, AU, "NoAutoUpdate"), "1");
    assert_eq!(hivexget(&output, AU, "AUOptions"), "3");
    assert_eq!(hivexget(&output, AU, "Keep"), "keep me");
    assert_eq!(
        hivexget(&output, r"Policies\New\Deep", "Path"),
        r"%ProgramFiles%\App"
    );
    assert_eq!(hivexget(&output, APP, "@"), "default text");
    assert_eq!(hivexget(&output, APP, "List"), "one\ntwo");
    assert_eq!(
        hivexget(&output, APP, "Big"),
        (0x1_0000_0002u64).to_string()
    );
    assert_eq!(hivexget(&output, APP, "Version"), "1.0");

    // The same changes as regedit writes them, merged by hivex into the same starting hive.
    let peer = copy(&input, &dir.path().join("peer"));
    merge(
        &peer,
        &format!(
            "Windows Registry Editor Version 5.00\r\n\r\n\
[{SOFTWARE_PREFIX}\\{AU}]\r\n\"NoAutoUpdate\"=dword:00000001\r\n\r\n\
[{SOFTWARE_PREFIX}\\Policies\\New]\r\n\r\n\
[{SOFTWARE_PREFIX}\\Policies\\New\\Deep]\r\n\"Path\"=hex(2):{}\r\n\r\n\
[{SOFTWARE_PREFIX}\\{APP}]\r\n@=\"default text\"\r\n\"List\"=hex(7):{}\r\n\"Big\"=hex(b):{}\r\n\"Blob\"=hex:{}\r\n\"Obsolete\"=-\r\n\r\n\
[-{SOFTWARE_PREFIX}\\Policies\\Old]\r\n\r\n\
[{SOFTWARE_PREFIX}\\Policies\\Empty]\r\n\r\n",
            hex_of(&path),
            hex_of(&list),
            hex_of(&big),
            hex_of(&blob),
        ),
        SOFTWARE_PREFIX,
    );
    let ours = export(&output);
    assert_eq!(ours, export(&peer));
    assert!(!ours.contains(r"Policies\Old"), "{ours}");
    assert!(!ours.contains("Obsolete"), "{ours}");
    assert!(ours.contains("\"NoAutoUpdate\"=dword:00000001"), "{ours}");
    assert!(
        !ours.contains("noautoupdate"),
        "the stored name is kept: {ours}"
    );
}

/// Every value type regedit writes, a default value, a value and a key deletion, hex data
/// continued over lines, and an empty section (strings ASCII: hivexregedit reads a file's
/// bytes as Latin-1).
fn every_type_reg() -> String {
    let expand = ValueData::ExpandSz(r"%SystemRoot%\System32\drivers".into());
    let expand = hex_of(&expand);
    // regedit wraps hex data at about 80 columns with a trailing `\` and two spaces.
    let (head, tail) = expand.split_at(36);
    let blob: Vec<u8> = (0..=255u8).collect();
    let blob_lines: Vec<String> = blob.chunks(25).map(hex).collect();
    format!(
        "Windows Registry Editor Version 5.00\r\n\r\n\
; a baseline, as regedit exports one\r\n\
[{p}\\Policies\\Test]\r\n\
@=\"default \\\"quoted\\\" C:\\\\path\"\r\n\
\"Sz\"=\"plain text\"\r\n\
\"Expand\"=hex(2):{head}\\\r\n  {tail}\r\n\
\"Multi\"=hex(7):{multi}\r\n\
\"Dword\"=dword:0000002a\r\n\
\"Qword\"=hex(b):ff,ee,dd,cc,bb,aa,00,11\r\n\
\"Bin\"=hex:{blob}\r\n\
\"None\"=hex(0):\r\n\
\"Gone\"=-\r\n\r\n\
[{p}\\Policies\\Test2]\r\n\
@=-\r\n\r\n\
[-{p}\\Policies\\Old]\r\n\r\n\
[{p}\\Policies\\New]\r\n\r\n\
[{p}\\Policies\\New\\Sub]\r\n\
\"Raw\"=hex(ffff0012):01,02\r\n\r\n",
        p = SOFTWARE_PREFIX,
        multi = hex_of(&ValueData::MultiSz(vec!["first".into(), "second".into()])),
        blob = blob_lines.join(",\\\r\n  "),
    )
}

fn every_type_base(path: &Path) {
    hive_from_reg(
        path,
        &[
            (
                r"Policies\Test",
                vec![
                    sz("", "old default"),
                    sz("Gone", "x"),
                    sz("Stay", "y"),
                    dword("Dword", 1),
                ],
            ),
            (
                r"Policies\Test2",
                vec![sz("", "old default 2"), sz("Other", "z")],
            ),
            (r"Policies\Old\Deeper", vec![dword("v", 1)]),
        ],
    );
}

#[test]
fn a_reg_file_with_every_value_type_applies_as_hivexregedit_merges_it_in_utf8_and_utf16le() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("SOFTWARE");
    every_type_base(&base);
    let text = every_type_reg();

    let peer = copy(&base, &dir.path().join("peer"));
    merge(&peer, &text, SOFTWARE_PREFIX);
    let want = export(&peer);
    assert!(want.contains("\"Raw\"=hex(ffff0012):01,02"), "{want}");

    let utf8 = registry::parse_reg(text.as_bytes(), "baseline.reg").expect("parse UTF-8");
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let wide = registry::parse_reg(&utf16, "baseline.reg").expect("parse UTF-16LE");
    assert_eq!(wide, utf8);
    assert!(utf8.contains(&RegistryOp::CreateKey {
        hive: Hive::Software,
        key: r"Policies\New".into()
    }));

    for (name, ops) in [("utf8", &utf8), ("utf16", &wide)] {
        let output = dir.path().join(format!("SOFTWARE.{name}"));
        registry::apply(&base, &output, ops, ORIGIN).expect("apply");
        assert_eq!(export(&output), want, "{name}");
        assert_eq!(
            hivexget(&output, r"Policies\Test", "@"),
            r#"default "quoted" C:\path"#
        );
        assert_eq!(
            hivexget(&output, r"Policies\Test", "Expand"),
            r"%SystemRoot%\System32\drivers"
        );
        assert_eq!(
            hivexget(&output, r"Policies\Test", "Multi"),
            "first\nsecond"
        );
        assert_eq!(hivexget(&output, r"Policies\Test", "Dword"), "42");
        assert_eq!(hivexget(&output, r"Policies\Test", "Stay"), "y");
    }
}

#[test]
fn text_beyond_ascii_is_written_as_utf16_and_read_back_by_hivex() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    policy_hive(&input);
    let text = "Windows Registry Editor Version 5.00\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\App]\r\n\
\"Größe\"=\"Ünïcödé — 日本語\"\r\n";
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    for (name, bytes) in [("utf8", text.as_bytes().to_vec()), ("utf16", utf16)] {
        let ops = registry::parse_reg(&bytes, "intl.reg").expect("parse");
        let output = dir.path().join(name);
        registry::apply(&input, &output, &ops, ORIGIN).expect("apply");
        assert_eq!(
            hivexget(&output, APP, "Größe"),
            "Ünïcödé — 日本語",
            "{name}"
        );
        assert!(
            export(&output).contains(&format!(
                "\"Größe\"=hex(1):{}",
                hex_of(&ValueData::Sz("Ünïcödé — 日本語".into()))
            )),
            "{name}"
        );
    }
}

#[test]
fn a_changed_software_hive_is_read_by_ois_own_hive_reader() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    let kb = "Package_for_KB5044033~31bf3856ad364e35~amd64~~22621.4313.1.1";
    software_hive(&input, "22631", 4460, "Enterprise", "23H2", &[(kb, 0x40)]);
    let output = dir.path().join("out");
    let ops = [
        set(CURRENT_VERSION, "UBR", ValueData::Dword(4470)),
        set(
            &format!("{CBS_PACKAGES}\\{kb}"),
            "CurrentState",
            ValueData::Dword(0x70),
        ),
    ];
    registry::apply(&input, &output, &ops, ORIGIN).expect("apply");
    let facts = ois::image::hive::parse(&std::fs::read(&output).expect("read"), "out")
        .expect("nt-hive reads it");
    assert_eq!(facts.ubr, Some(4470));
    assert_eq!(facts.current_build, Some(22631));
    assert_eq!(facts.packages.len(), 1);
    assert_eq!(facts.packages[0].current_state, Some(0x70));
}

#[test]
fn hundreds_of_new_keys_grow_the_hive_and_all_read_back() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    minimal_hive(&input);
    let ops: Vec<RegistryOp> = (0..600)
        .rev()
        .map(|i| {
            set(
                &format!(r"Bulk\Key{i:04}"),
                "Index",
                ValueData::Sz(format!("value {i}")),
            )
        })
        .collect();
    let output = dir.path().join("out");
    let done = registry::apply(&input, &output, &ops, ORIGIN).expect("apply");
    assert!(done.iter().all(|a| a.action == "set"));
    assert!(
        std::fs::metadata(&output).expect("out").len()
            > std::fs::metadata(&input).expect("in").len()
    );
    for i in [0, 299, 599] {
        assert_eq!(
            hivexget(&output, &format!(r"Bulk\Key{i:04}"), "Index"),
            format!("value {i}")
        );
    }
    let exported = export(&output);
    assert_eq!(exported.matches("[\\Bulk\\Key").count(), 600);
    // hivex keeps subkeys sorted (Windows finds keys by binary search), whatever the order
    // they were added in.
    let keys: Vec<&str> = exported
        .lines()
        .filter(|l| l.starts_with("[\\Bulk\\Key"))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

/// A SYSTEM hive with two control sets, each with the Spooler service, and `Select` as given.
fn system_hive(path: &Path, select: Option<u32>) {
    minimal_hive(path);
    let mut reg = String::from("Windows Registry Editor Version 5.00\r\n\r\n");
    if let Some(current) = select {
        reg.push_str(&format!(
            "[{SYSTEM_PREFIX}\\Select]\r\n\"Current\"=dword:{current:08x}\r\n\"Default\"=dword:{current:08x}\r\n\"LastKnownGood\"=dword:00000001\r\n\r\n"
        ));
    }
    for set in ["ControlSet001", "ControlSet002"] {
        reg.push_str(&format!(
            "[{SYSTEM_PREFIX}\\{set}]\r\n\r\n[{SYSTEM_PREFIX}\\{set}\\Services]\r\n\r\n\
[{SYSTEM_PREFIX}\\{set}\\Services\\Spooler]\r\n\"Start\"=dword:00000002\r\n\r\n"
        ));
    }
    merge(path, &reg, SYSTEM_PREFIX);
}

const SPOOLER_REG: &str = "Windows Registry Editor Version 5.00\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Spooler]\r\n\
\"Start\"=dword:00000004\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\NewSvc]\r\n\
\"Start\"=dword:00000003\r\n\r\n";

#[test]
fn current_control_set_goes_to_the_control_set_select_current_names() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = registry::parse_reg(SPOOLER_REG.as_bytes(), "spooler.reg").expect("parse");
    assert_eq!(
        ops[0].key(),
        r"CurrentControlSet\Services\Spooler",
        "mapped when applied"
    );

    let input = dir.path().join("SYSTEM");
    system_hive(&input, Some(2));
    let output = dir.path().join("SYSTEM.new");
    let done = registry::apply(&input, &output, &ops, "SYSTEM of the test").expect("apply");
    let keys: Vec<(&str, &str)> = done
        .iter()
        .map(|a| (a.key.as_str(), a.action.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (r"ControlSet002\Services\Spooler", "set"),
            (r"ControlSet002\Services\NewSvc", "set")
        ]
    );
    assert_eq!(done[0].hive, Hive::System);
    assert_eq!(
        hivexget(&output, r"ControlSet002\Services\Spooler", "Start"),
        "4"
    );
    assert_eq!(
        hivexget(&output, r"ControlSet002\Services\NewSvc", "Start"),
        "3"
    );
    assert_eq!(
        hivexget(&output, r"ControlSet001\Services\Spooler", "Start"),
        "2"
    );
    let exported = export(&output);
    assert!(!exported.contains("CurrentControlSet"), "{exported}");
    assert!(
        !exported.contains(r"ControlSet001\Services\NewSvc"),
        "{exported}"
    );

    // Without Select\Current, Windows boots ControlSet001.
    let bare = dir.path().join("SYSTEM.bare");
    system_hive(&bare, None);
    let output = dir.path().join("SYSTEM.bare.new");
    registry::apply(&bare, &output, &ops, "SYSTEM of the test").expect("apply");
    assert_eq!(
        hivexget(&output, r"ControlSet001\Services\Spooler", "Start"),
        "4"
    );
    assert_eq!(
        hivexget(&output, r"ControlSet002\Services\Spooler", "Start"),
        "2"
    );

    // A Select\Current naming a control set the hive lacks is refused, not invented.
    let odd = dir.path().join("SYSTEM.odd");
    system_hive(&odd, Some(3));
    let err = refused(&odd, &ops);
    assert!(matches!(err, RegistryError::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(r"Select\Current names ControlSet003, which this hive does not have"),
        "{err}"
    );
}

/// Applies `ops` to `input`, which must fail; `input` must be byte-identical afterwards and
/// its directory hold nothing new.
fn refused(input: &Path, ops: &[RegistryOp]) -> RegistryError {
    let dir = input.parent().expect("dir");
    let before = std::fs::read(input).expect("read input");
    let listing = names_in(dir);
    let output = dir.join("refused.out");
    let err = registry::apply(input, &output, ops, ORIGIN).expect_err("refused");
    assert_eq!(
        std::fs::read(input).expect("read input"),
        before,
        "input changed: {err}"
    );
    assert!(!output.exists(), "output left behind: {err}");
    assert_eq!(names_in(dir), listing, "files left behind: {err}");
    assert!(err.to_string().starts_with(ORIGIN), "{err}");
    err
}

fn one_set() -> Vec<RegistryOp> {
    vec![set(AU, "NoAutoUpdate", ValueData::Dword(1))]
}

#[test]
fn a_file_that_is_not_a_hive_is_refused_as_damaged() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("SOFTWARE");
    std::fs::write(&text, "not a hive\n".repeat(1000)).expect("write");
    let err = refused(&text, &one_set());
    assert!(matches!(err, RegistryError::Damaged { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not start with the registry hive signature \"regf\""),
        "{err}"
    );

    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"regf").expect("write");
    let err = refused(&tiny, &one_set());
    assert!(
        err.to_string().contains("it is 4 bytes, less than"),
        "{err}"
    );

    // A hive whose base block was damaged after it was written.
    let header = dir.path().join("header");
    policy_hive(&header);
    let mut bytes = std::fs::read(&header).expect("read");
    bytes[0x30] ^= 0x55;
    std::fs::write(&header, &bytes).expect("write");
    let err = refused(&header, &one_set());
    assert!(matches!(err, RegistryError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("checksum does not match"), "{err}");

    // A sound base block over a damaged first hive bin: hivex itself refuses it.
    let bin = dir.path().join("bin");
    policy_hive(&bin);
    let mut bytes = std::fs::read(&bin).expect("read");
    put(&mut bytes, 0x1000, b"nbih");
    std::fs::write(&bin, &bytes).expect("write");
    let err = refused(&bin, &one_set());
    assert!(matches!(err, RegistryError::Damaged { .. }), "{err:?}");
    assert!(
        err.to_string().contains("hivex refused to open it"),
        "{err}"
    );
}

#[test]
fn a_hive_not_cleanly_unloaded_is_refused_with_what_to_do() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    policy_hive(&input);
    let mut bytes = std::fs::read(&input).expect("read");
    // A write was begun (primary raised) and not finished: its data is in the .LOG files.
    let secondary = get32(&bytes, 0x08);
    put32(&mut bytes, 0x04, secondary + 1);
    fix_checksum(&mut bytes);
    std::fs::write(&input, &bytes).expect("write");
    let err = refused(&input, &one_set());
    assert!(
        matches!(err, RegistryError::NotCleanlyUnloaded { primary, secondary: s, .. } if primary == secondary + 1 && s == secondary),
        "{err:?}"
    );
    let text = err.to_string();
    for want in [
        "not cleanly unloaded",
        ".LOG1/.LOG2",
        "The update is refused",
        "reg load / reg unload",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn changes_that_cannot_be_made_safely_are_refused_before_anything_is_written() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    policy_hive(&input);
    merge(
        &input,
        &format!(
            "Windows Registry Editor Version 5.00\r\n\r\n[{SOFTWARE_PREFIX}\\Vendor\\Large]\r\n\"Blob\"=hex:{}\r\n\r\n",
            hex(&vec![0x5a; 20_000])
        ),
        SOFTWARE_PREFIX,
    );

    // A `..` in a key.
    let err = refused(
        &input,
        &[RegistryOp::DeleteKey {
            hive: Hive::Software,
            key: r"Policies\..\Vendor".into(),
        }],
    );
    assert!(matches!(err, RegistryError::InvalidOp { .. }), "{err:?}");
    assert!(err.to_string().contains("\"..\" component"), "{err}");

    // A new key with a non-ASCII name, which Windows would not find where hivex puts it.
    let err = refused(&input, &[set(r"Vendor\Café", "x", ValueData::Dword(1))]);
    assert!(matches!(err, RegistryError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("non-ASCII"), "{err}");

    // A change to a key holding a value over 16,344 bytes, which hivex would rewrite in a
    // form Windows does not read; and a value that large.
    let err = refused(
        &input,
        &[set(r"Vendor\Large", "Small", ValueData::Dword(1))],
    );
    assert!(matches!(err, RegistryError::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string().contains("\"Blob\" holds 20000 bytes"),
        "{err}"
    );
    let err = refused(
        &input,
        &[set(APP, "Huge", ValueData::Binary(vec![0; 16_345]))],
    );
    assert!(matches!(err, RegistryError::InvalidOp { .. }), "{err:?}");

    // The output naming the input.
    let err = registry::apply(&input, &input, &one_set(), ORIGIN).expect_err("over the input");
    assert!(
        err.to_string().contains("the input is never modified"),
        "{err}"
    );
}

#[test]
fn bad_package_input_is_refused_with_the_file_line_and_problem() {
    let err = registry::parse_reg(
        b"Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies]\r\n\"Level\"=dword:1234567890\r\n",
        "payload/baseline.reg",
    )
    .expect_err("malformed");
    assert!(
        matches!(err, RegistryError::RegFile { line: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("payload/baseline.reg, line 4: dword: takes 1 to 8 hex digits"),
        "{err}"
    );

    let err = registry::parse_reg(
        b"Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\HARDWARE\\DESCRIPTION]\r\n",
        "payload/hw.reg",
    )
    .expect_err("unknown root");
    let text = err.to_string();
    assert!(text.starts_with("payload/hw.reg, line 3: \"HKEY_LOCAL_MACHINE\\\\HARDWARE\\\\DESCRIPTION\" is not under a hive ois changes offline"), "{text}");

    let data: toml::Table = toml::from_str("data = \"1\"").expect("toml");
    assert_eq!(
        ValueData::from_toml("dword", &data["data"]),
        Err("type \"dword\" needs an integer from 0 to 4294967295, not a string \"1\"".into())
    );
}

/// Why ois refuses data over 16,344 bytes: hivex stores it in one cell, and a reader that
/// follows Windows' format (nt-hive here, the kernel on Windows) takes such a size to mean a
/// big-data record and misreads it. At 16,344 bytes both agree.
#[test]
fn hivex_stores_data_over_16344_bytes_in_a_form_windows_readers_refuse() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("SOFTWARE");
    minimal_hive(&path);
    merge(
        &path,
        &format!(
            "Windows Registry Editor Version 5.00\r\n\r\n[{SOFTWARE_PREFIX}\\Vendor]\r\n\r\n\
[{SOFTWARE_PREFIX}\\Vendor\\Large]\r\n\"Fits\"=hex:{}\r\n\"Over\"=hex:{}\r\n\r\n",
            hex(&vec![0x11; registry::MAX_VALUE_BYTES]),
            hex(&vec![0x22; registry::MAX_VALUE_BYTES + 1]),
        ),
        SOFTWARE_PREFIX,
    );
    let bytes = std::fs::read(&path).expect("read");
    let hive = nt_hive::Hive::new(bytes.as_slice()).expect("nt-hive opens it");
    let key = hive
        .root_key_node()
        .expect("root")
        .subpath(r"Vendor\Large")
        .expect("key")
        .expect("lookup");
    let data = |name: &str| {
        key.value(name)
            .expect("value")
            .expect("lookup")
            .data()
            .and_then(|d| d.into_vec())
    };
    assert_eq!(
        data("Fits").expect("fits"),
        vec![0x11; registry::MAX_VALUE_BYTES]
    );
    assert!(
        data("Over").is_err(),
        "read as a big-data record, which it is not"
    );
}

/// hivex writes all of a key's values again for any change and never reuses the cells it
/// frees: a .reg section of 200 values, written value by value, grew an 8 KiB hive to 1.6 MB.
#[test]
fn a_run_of_values_on_one_key_is_written_once() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("SOFTWARE");
    minimal_hive(&input);
    let ops: Vec<RegistryOp> = (0..200)
        .map(|i| {
            set(
                r"Policies\Baseline",
                &format!("Setting{i:03}"),
                ValueData::Sz(format!("value number {i}")),
            )
        })
        .collect();
    let output = dir.path().join("out");
    registry::apply(&input, &output, &ops, ORIGIN).expect("apply");
    let size = std::fs::metadata(&output).expect("output").len();
    assert!(size <= 64 << 10, "{size} bytes for 200 small values");
    assert_eq!(
        hivexget(&output, r"Policies\Baseline", "Setting199"),
        "value number 199"
    );
    assert_eq!(export(&output).matches("\"Setting").count(), 200);
}
