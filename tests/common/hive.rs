//! Registry hives made by a peer tool: hivex (`hivexregedit`, Debian libwin-hivex-perl)
//! writes keys and values into a hive, but cannot create one from nothing, so
//! [`minimal_hive`] writes the empty hive it starts from.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Where hive offsets count from: cell offsets are relative to the first hbin, which follows
/// the 4 KiB base block.
pub const HBIN_START: usize = 0x1000;

/// Writes a valid empty hive: a base block and one 4 KiB hbin holding the root key, its
/// security cell and one free cell for the rest. Only what hivex and nt-hive check is set.
pub fn minimal_hive(path: &Path) {
    let mut hive = vec![0u8; HBIN_START + 0x1000];
    let root = 0x20; // first cell, after the 32-byte hbin header
    let root_size = 88; // 4 (size) + 76 (nk header) + 4 ("ROOT"), rounded up to 8
    let security = root + root_size;
    let security_size = 48; // 4 (size) + 20 (sk header) + 20 (descriptor), rounded up to 8
    let free = security + security_size;

    // Base block.
    put(&mut hive, 0x00, b"regf");
    put32(&mut hive, 0x04, 1); // primary and secondary sequence numbers: equal = cleanly written
    put32(&mut hive, 0x08, 1);
    put32(&mut hive, 0x14, 1); // format version 1.5, the one Windows XP to 11 write
    put32(&mut hive, 0x18, 5);
    put32(&mut hive, 0x1c, 0); // file type: primary (not a log)
    put32(&mut hive, 0x20, 1); // file format: direct memory load
    put32(&mut hive, 0x24, root as u32);
    put32(&mut hive, 0x28, 0x1000); // bytes of hbins
    put32(&mut hive, 0x2c, 1); // clustering factor
    fix_checksum(&mut hive);

    // The hbin header: its offset from the first hbin and its size.
    let hbin = HBIN_START;
    put(&mut hive, hbin, b"hbin");
    put32(&mut hive, hbin + 0x04, 0);
    put32(&mut hive, hbin + 0x08, 0x1000);

    // The root key (`nk`). A negative cell size marks a cell in use.
    let nk = hbin + root;
    put32(&mut hive, nk, (-(root_size as i32)) as u32);
    put(&mut hive, nk + 0x04, b"nk");
    // KEY_HIVE_ENTRY (the root), KEY_NO_DELETE, KEY_COMP_NAME (name in Latin-1, not UTF-16).
    put16(&mut hive, nk + 0x06, 0x0004 | 0x0008 | 0x0020);
    // No subkeys, volatile subkeys, values or class name yet: offset 0xFFFFFFFF is "none".
    for field in [0x20, 0x24, 0x2c, 0x34] {
        put32(&mut hive, nk + field, u32::MAX);
    }
    // hivex gives each new key its parent's security cell, so the root needs one.
    put32(&mut hive, nk + 0x30, security as u32);
    put16(&mut hive, nk + 0x4c, 4);
    put(&mut hive, nk + 0x50, b"ROOT");

    // The security cell (`sk`): alone in the hive's list of them, so it links to itself,
    // used by the one key.
    let sk = hbin + security;
    put32(&mut hive, sk, (-(security_size as i32)) as u32);
    put(&mut hive, sk + 0x04, b"sk");
    put32(&mut hive, sk + 0x08, security as u32);
    put32(&mut hive, sk + 0x0c, security as u32);
    put32(&mut hive, sk + 0x10, 1);
    put32(&mut hive, sk + 0x14, 20);
    // A self-relative security descriptor, revision 1, with a DACL present but null: full
    // access for everyone, the least a descriptor can say.
    put(&mut hive, sk + 0x18, &[1, 0]);
    put16(&mut hive, sk + 0x1a, 0x8000 | 0x0004);

    // The rest of the hbin is one free cell (positive size) for hivex to allocate from.
    put32(&mut hive, hbin + free, (0x1000 - free) as u32);
    std::fs::write(path, hive).expect("write minimal hive");
}

/// Recomputes the base block's checksum: the XOR of its first 127 dwords, 0 and 0xFFFFFFFF
/// being reserved.
pub fn fix_checksum(hive: &mut [u8]) {
    let sum = (0..0x1fc)
        .step_by(4)
        .fold(0u32, |sum, at| sum ^ get32(hive, at));
    let sum = match sum {
        0 => 1,
        u32::MAX => u32::MAX - 1,
        s => s,
    };
    put32(hive, 0x1fc, sum);
}

/// `"name"="text"` in a .reg file.
pub fn sz(name: &str, text: &str) -> String {
    let escape = |s: &str| s.replace('\\', r"\\").replace('"', "\\\"");
    format!("\"{}\"=\"{}\"", escape(name), escape(text))
}

/// `"name"=dword:…` in a .reg file.
pub fn dword(name: &str, value: u32) -> String {
    format!("\"{name}\"=dword:{value:08x}")
}

/// A .reg file setting each key (a path from the hive's root) to its value lines. hivexregedit
/// creates a key only under an existing one, so each missing ancestor gets a section first.
pub fn reg_text(keys: &[(&str, Vec<String>)]) -> String {
    let mut text = String::from("Windows Registry Editor Version 5.00\r\n\r\n");
    let mut written = BTreeSet::new();
    for (key, values) in keys {
        let parts: Vec<&str> = key.split('\\').collect();
        for depth in 1..=parts.len() {
            let path = parts[..depth].join("\\");
            let last = depth == parts.len();
            if written.insert(path.to_ascii_lowercase()) || last {
                text.push_str(&format!("[HKEY_LOCAL_MACHINE\\SOFTWARE\\{path}]\r\n"));
                if last {
                    for v in values {
                        text.push_str(v);
                        text.push_str("\r\n");
                    }
                }
                text.push_str("\r\n");
            }
        }
    }
    text
}

/// Writes a hive at `path` holding `keys` (see [`reg_text`]): a [`minimal_hive`] into which
/// `hivexregedit --merge` imports them.
pub fn hive_from_reg(path: &Path, keys: &[(&str, Vec<String>)]) {
    minimal_hive(path);
    let reg = path.with_extension("reg");
    std::fs::write(&reg, reg_text(keys)).expect("write .reg");
    hivex_merge(path, &reg, r"HKEY_LOCAL_MACHINE\SOFTWARE");
}

/// `hivexregedit --merge --prefix PREFIX HIVE REG`, which must succeed.
pub fn hivex_merge(hive: &Path, reg: &Path, prefix: &str) {
    let out = Command::new("hivexregedit")
        .args(["--merge", "--prefix", prefix])
        .arg(hive)
        .arg(reg)
        .output()
        .expect("run hivexregedit");
    assert!(
        out.status.success(),
        "hivexregedit --merge failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub const CURRENT_VERSION: &str = r"Microsoft\Windows NT\CurrentVersion";
pub const CBS_PACKAGES: &str =
    r"Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages";

/// A SOFTWARE hive as Windows 10/11 keeps one, reduced to what ois reads: CurrentVersion with
/// `build` (CurrentBuild and CurrentBuildNumber), `ubr`, version 10.0, `edition`, `display_version`
/// and ProductName "Windows 10 <edition>" (what Windows 11 writes too), and each of `packages`
/// (identity, CurrentState) under Component Based Servicing\Packages with the values Windows
/// writes beside CurrentState.
pub fn software_hive(
    path: &Path,
    build: &str,
    ubr: u32,
    edition: &str,
    display_version: &str,
    packages: &[(&str, u32)],
) {
    let mut keys = vec![(
        CURRENT_VERSION.to_string(),
        vec![
            sz("CurrentBuild", build),
            sz("CurrentBuildNumber", build),
            dword("UBR", ubr),
            dword("CurrentMajorVersionNumber", 10),
            dword("CurrentMinorVersionNumber", 0),
            sz("EditionID", edition),
            sz("DisplayVersion", display_version),
            sz("ProductName", &format!("Windows 10 {edition}")),
        ],
    )];
    for (identity, state) in packages {
        keys.push((
            format!("{CBS_PACKAGES}\\{identity}"),
            vec![
                dword("CurrentState", *state),
                sz("InstallClient", "DISM Package Manager Provider"),
                sz(
                    "InstallLocation",
                    &format!(r"\\?\C:\Windows\Servicing\{identity}"),
                ),
                dword("Visibility", 1),
            ],
        ));
    }
    let keys: Vec<(&str, Vec<String>)> =
        keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    hive_from_reg(path, &keys);
}

/// `hivexget HIVE KEY VALUE`: the value as hivex prints it (a DWORD in decimal).
pub fn hivexget(hive: &Path, key: &str, value: &str) -> String {
    let out = Command::new("hivexget")
        .arg(hive)
        .arg(format!("\\{key}"))
        .arg(value)
        .output()
        .expect("run hivexget");
    assert!(
        out.status.success(),
        "hivexget {key} {value} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// The file offset of the key cell (`nk`) named `name` (its 4-byte size first), for tests that
/// damage a hive hivex wrote.
pub fn key_cell(hive: &[u8], name: &str) -> usize {
    (HBIN_START..hive.len().saturating_sub(0x54))
        .step_by(8)
        .find(|&at| {
            &hive[at + 4..at + 6] == b"nk"
                && get16(hive, at + 0x4c) as usize == name.len()
                && hive[at + 0x50..].starts_with(name.as_bytes())
        })
        .unwrap_or_else(|| panic!("no key cell named {name}"))
}

pub fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    b[at..at + bytes.len()].copy_from_slice(bytes);
}

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    put(b, at, &v.to_le_bytes());
}

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    put(b, at, &v.to_le_bytes());
}
