//! The `.reg` files regedit exports and imports ("Windows Registry Editor Version 5.00", or
//! the older "REGEDIT4"), read into [`RegistryOp`]s for an offline image's hives.

use super::value::{ValueData, REG_EXPAND_SZ, REG_MULTI_SZ, REG_SZ};
use super::{validate_key, validate_value_name, Hive, RegistryError, RegistryOp};

/// A .reg file larger than this is refused before it is decoded (real ones are kilobytes;
/// a full SOFTWARE export is a few hundred MiB and not something to import).
pub const MAX_REG_FILE_BYTES: u64 = 64 << 20;

const HEADER_V5: &str = "Windows Registry Editor Version 5.00";
const HEADER_V4: &str = "REGEDIT4";

/// The roots a .reg file may name and the offline hive each is; longer prefixes first so
/// that a hive's own name is not taken for a key.
const ROOTS: &[(&str, Hive)] = &[
    (r"HKEY_LOCAL_MACHINE\SOFTWARE", Hive::Software),
    (r"HKEY_LOCAL_MACHINE\SYSTEM", Hive::System),
    (r"HKEY_LOCAL_MACHINE\SAM", Hive::Sam),
    (r"HKEY_LOCAL_MACHINE\SECURITY", Hive::Security),
    (r"HKEY_LOCAL_MACHINE\COMPONENTS", Hive::Components),
    (r"HKEY_USERS\.DEFAULT", Hive::Default),
    ("HKEY_CURRENT_USER", Hive::Ntuser),
    (r"HKLM\SOFTWARE", Hive::Software),
    (r"HKLM\SYSTEM", Hive::System),
    (r"HKLM\SAM", Hive::Sam),
    (r"HKLM\SECURITY", Hive::Security),
    (r"HKLM\COMPONENTS", Hive::Components),
    (r"HKU\.DEFAULT", Hive::Default),
    ("HKCU", Hive::Ntuser),
];

/// Parses a Windows Registry Editor 5.00 `.reg` file (UTF-16LE with BOM, or UTF-8 with or
/// without BOM; the REGEDIT4 header too), mapping roots to offline hives:
/// HKEY_LOCAL_MACHINE\SOFTWARE→SOFTWARE, HKLM\SYSTEM→SYSTEM, HKLM\SAM, HKLM\SECURITY,
/// HKLM\COMPONENTS, HKEY_USERS\.DEFAULT→DEFAULT, HKEY_CURRENT_USER→NTUSER (the default user),
/// with HKLM/HKCU/HKU abbreviations. `[-key]` deletes a key, `"name"=-` deletes a value, `@`
/// is the default value; `"text"` (with \\ and \" escapes), `dword:`, `hex:` (binary),
/// `hex(0)`..`hex(b)` (and any other type number) incl. `hex(2)` expand_sz and `hex(7)`
/// multi_sz decoded from UTF-16LE, `hex(b)` qword, and `\` line continuations. Any other root,
/// a malformed line or an unknown form is an Err naming `origin`, the line number and the
/// problem. Files over [`MAX_REG_FILE_BYTES`] are refused.
pub fn parse_reg(bytes: &[u8], origin: &str) -> Result<Vec<RegistryOp>, RegistryError> {
    if bytes.len() as u64 > MAX_REG_FILE_BYTES {
        return Err(RegistryError::RegFileTooLarge {
            origin: origin.to_string(),
            size: bytes.len() as u64,
            limit: MAX_REG_FILE_BYTES,
        });
    }
    let text = decode(bytes).map_err(|problem| RegistryError::RegFileEncoding {
        origin: origin.to_string(),
        problem,
    })?;
    Parser::default()
        .parse(&text)
        .map_err(|(line, problem)| RegistryError::RegFile {
            origin: origin.to_string(),
            line,
            problem,
        })
}

/// The file's text: UTF-16LE after its byte order mark, else UTF-8 (a BOM dropped).
fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        if !rest.len().is_multiple_of(2) {
            return Err("it starts as UTF-16LE but has an odd number of bytes".into());
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|_| {
            "it starts as UTF-16LE but holds an unpaired surrogate (not valid UTF-16)".into()
        });
    }
    if bytes.starts_with(&[0xfe, 0xff]) {
        return Err("it is UTF-16 big-endian: save it as Unicode (UTF-16LE) or UTF-8".into());
    }
    let bytes = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err(
            "it holds NUL bytes: a UTF-16 file needs its byte order mark (regedit writes one)"
                .into(),
        );
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        format!(
            "it is neither UTF-16LE with a byte order mark nor UTF-8 (byte {} is not UTF-8): save it as Unicode or UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// REGEDIT4: string data in `hex(1|2|7)` is single-byte (ANSI) text.
    Four,
    /// Windows Registry Editor Version 5.00: string data is UTF-16LE.
    Five,
}

/// The section being read.
enum Section {
    /// Before the first `[key]`.
    None,
    /// A `[-key]`: nothing may follow until the next section.
    Deleted,
    /// The root of a hive: `[HKEY_LOCAL_MACHINE\SOFTWARE]` alone changes nothing.
    Root,
    /// `[key]`: `create_at` is where its CreateKey goes if no value is set in it.
    Key {
        hive: Hive,
        key: String,
        create_at: usize,
        sets: bool,
    },
}

struct Parser {
    ops: Vec<RegistryOp>,
    section: Section,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            ops: Vec::new(),
            section: Section::None,
        }
    }
}

/// A problem at a line (1-based).
type LineError = (usize, String);

impl Parser {
    fn parse(mut self, text: &str) -> Result<Vec<RegistryOp>, LineError> {
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        let version = loop {
            let Some(line) = lines.get(at) else {
                return Err((
                    1,
                    format!("the file is empty: a .reg file starts with {HEADER_V5:?}"),
                ));
            };
            at += 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == HEADER_V5 {
                break Version::Five;
            }
            if line == HEADER_V4 {
                break Version::Four;
            }
            return Err((
                at,
                format!(
                    "a .reg file starts with {HEADER_V5:?} (or {HEADER_V4:?}), not {:?}",
                    shorten(line)
                ),
            ));
        };
        while at < lines.len() {
            let number = at + 1;
            let mut line = lines[at].trim().to_string();
            at += 1;
            if line.is_empty() || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                self.section(&line).map_err(|p| (number, p))?;
                continue;
            }
            // A value's data may go on over lines ending with `\` (regedit wraps hex data at
            // 80 columns); the continuation's indent is not part of it.
            while line.ends_with('\\') && is_hex_value(&line) {
                line.pop();
                let Some(next) = lines.get(at) else {
                    return Err((
                        number,
                        "the file ends in the middle of a value continued with \\".into(),
                    ));
                };
                line.push_str(next.trim());
                at += 1;
            }
            self.value(&line, version).map_err(|p| (number, p))?;
        }
        self.end_section();
        Ok(self.ops)
    }

    fn section(&mut self, line: &str) -> Result<(), String> {
        self.end_section();
        let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
            return Err(format!(
                "a section line is [key] or [-key], not {:?}",
                shorten(line)
            ));
        };
        let (delete, path) = match inner.strip_prefix('-') {
            Some(path) => (true, path),
            None => (false, inner),
        };
        let (hive, key) = map_root(path)?;
        self.section = match (key, delete) {
            (None, true) => {
                return Err(format!(
                    "[-{path}] would delete the whole {hive} hive; delete the keys under it instead"
                ))
            }
            (None, false) => Section::Root,
            (Some(key), true) => {
                self.ops.push(RegistryOp::DeleteKey { hive, key });
                Section::Deleted
            }
            (Some(key), false) => Section::Key {
                hive,
                key,
                create_at: self.ops.len(),
                sets: false,
            },
        };
        Ok(())
    }

    /// Closes the section: one with no value set still creates its key, as regedit does.
    fn end_section(&mut self) {
        if let Section::Key {
            hive,
            key,
            create_at,
            sets: false,
        } = std::mem::replace(&mut self.section, Section::None)
        {
            self.ops
                .insert(create_at, RegistryOp::CreateKey { hive, key });
        }
    }

    fn value(&mut self, line: &str, version: Version) -> Result<(), String> {
        let (hive, key, sets) = match &mut self.section {
            Section::Key {
                hive, key, sets, ..
            } => (*hive, key.clone(), sets),
            Section::None => {
                return Err(format!(
                    "{:?} comes before any [key] section",
                    shorten(line)
                ))
            }
            Section::Deleted => {
                return Err(format!(
                    "{:?} follows a [-key] deletion, which takes no values",
                    shorten(line)
                ))
            }
            Section::Root => {
                return Err(format!(
                    "{:?} would set a value at the root of a hive, which ois does not change",
                    shorten(line)
                ))
            }
        };
        let (name, rest) = if let Some(rest) = line.strip_prefix('@') {
            (String::new(), rest)
        } else if line.starts_with('"') {
            let (name, rest) = quoted(line)?;
            (name, rest)
        } else {
            return Err(format!(
                "a value line is \"name\"=data or @=data, not {:?}",
                shorten(line)
            ));
        };
        validate_value_name(&name)?;
        let Some(data) = rest.trim_start().strip_prefix('=') else {
            return Err(format!(
                "the value name is not followed by = in {:?}",
                shorten(line)
            ));
        };
        let data = data.trim();
        if data == "-" {
            self.ops.push(RegistryOp::DeleteValue { hive, key, name });
            return Ok(());
        }
        let value = value_data(data, version)?;
        value.check_size()?;
        *sets = true;
        self.ops.push(RegistryOp::SetValue {
            hive,
            key,
            name,
            value,
        });
        Ok(())
    }
}

/// The hive and key (None for the hive's root) a section's path names.
fn map_root(path: &str) -> Result<(Hive, Option<String>), String> {
    for (root, hive) in ROOTS {
        let Some(head) = path.get(..root.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(root) {
            continue;
        }
        let rest = &path[root.len()..];
        if rest.is_empty() {
            return Ok((*hive, None));
        }
        let Some(key) = rest.strip_prefix('\\') else {
            continue;
        };
        validate_key(key)?;
        return Ok((*hive, Some(key.to_string())));
    }
    let root = path.split('\\').next().unwrap_or(path);
    let hint =
        if root.eq_ignore_ascii_case("HKEY_CLASSES_ROOT") || root.eq_ignore_ascii_case("HKCR") {
            r" (HKEY_CLASSES_ROOT is a view: write HKEY_LOCAL_MACHINE\SOFTWARE\Classes)"
        } else {
            ""
        };
    Err(format!(
        "{:?} is not under a hive ois changes offline{hint}: use HKEY_LOCAL_MACHINE\\SOFTWARE, \\SYSTEM, \\SAM, \\SECURITY or \\COMPONENTS, HKEY_USERS\\.DEFAULT, or HKEY_CURRENT_USER (the default user's NTUSER.DAT)",
        shorten(path)
    ))
}

/// A `"…"` string at the start of `s` with its `\\` and `\"` escapes undone, and what follows.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    if !matches!(chars.next(), Some((_, '"'))) {
        return Err(format!("expected a \"quoted\" string at {:?}", shorten(s)));
    }
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[at + 1..])),
            '\\' => match chars.next() {
                Some((_, c @ ('\\' | '"'))) => out.push(c),
                Some((_, other)) => {
                    return Err(format!(
                        "\\{other} in {:?} is not an escape a .reg string has (only \\\\ and \\\")",
                        shorten(s)
                    ))
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(format!("the string {:?} has no closing quote", shorten(s)))
}

/// Whether a value line's data is a `hex…:` form (only those continue over lines).
fn is_hex_value(line: &str) -> bool {
    let data = if let Some(rest) = line.strip_prefix('@') {
        Some(rest)
    } else if line.starts_with('"') {
        quoted(line).ok().map(|(_, rest)| rest)
    } else {
        None
    };
    data.and_then(|d| d.trim_start().strip_prefix('='))
        .map(|d| d.trim_start().to_ascii_lowercase().starts_with("hex"))
        .unwrap_or(false)
}

fn value_data(data: &str, version: Version) -> Result<ValueData, String> {
    if data.starts_with('"') {
        let (text, rest) = quoted(data)?;
        if !rest.trim().is_empty() {
            return Err(format!(
                "{:?} follows the closing quote of a string",
                shorten(rest.trim())
            ));
        }
        if text.contains('\0') {
            return Err("a string holds a NUL character".into());
        }
        return Ok(ValueData::Sz(text));
    }
    let lower = data.to_ascii_lowercase();
    if let Some(digits) = lower.strip_prefix("dword:") {
        return Ok(ValueData::Dword(hex_u32(
            digits,
            "dword: takes 1 to 8 hex digits",
        )?));
    }
    if let Some(hex) = lower.strip_prefix("hex:") {
        return Ok(ValueData::Binary(hex_bytes(hex)?));
    }
    if let Some(rest) = lower.strip_prefix("hex(") {
        let Some((kind, hex)) = rest.split_once("):") else {
            return Err(format!(
                "hex(…) takes a type number and then \"):\", as in hex(2):, not {:?}",
                shorten(data)
            ));
        };
        let kind = hex_u32(kind, "hex(…) takes a type number in hex")?;
        let bytes = hex_bytes(hex)?;
        if version == Version::Four && matches!(kind, REG_SZ | REG_EXPAND_SZ | REG_MULTI_SZ) {
            return ansi_strings(kind, &bytes);
        }
        return Ok(ValueData::from_raw(kind, &bytes));
    }
    Err(format!(
        "{:?} is not a value form ois reads: \"text\", dword:, hex:, hex(n): or - (delete)",
        shorten(data)
    ))
}

/// 1 to 8 hex digits as a number; `what` says what was expected.
fn hex_u32(digits: &str, what: &str) -> Result<u32, String> {
    let digits = digits.trim();
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{what}, not {:?}", shorten(digits)));
    }
    u32::from_str_radix(digits, 16).map_err(|e| e.to_string())
}

/// `01,ab,ff` (spaces allowed): the bytes of a hex data form.
fn hex_bytes(hex: &str) -> Result<Vec<u8>, String> {
    let hex = hex.trim();
    if hex.is_empty() {
        return Ok(Vec::new());
    }
    hex.split(',')
        .map(|item| {
            let item = item.trim();
            if item.is_empty() || item.len() > 2 || !item.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "hex data is bytes of two hex digits between commas, and {:?} is not one",
                    shorten(item)
                ));
            }
            u8::from_str_radix(item, 16).map_err(|e| e.to_string())
        })
        .collect()
}

/// REGEDIT4's string data: single-byte text in the writer's code page, NUL-terminated. Only
/// ASCII means the same in every code page, so anything else is refused.
fn ansi_strings(kind: u32, bytes: &[u8]) -> Result<ValueData, String> {
    if !bytes.is_ascii() {
        return Err(format!(
            "hex({kind:x}) in a REGEDIT4 file holds text in a code page ois cannot know: export the key again from regedit as Windows Registry Editor Version 5.00"
        ));
    }
    // ASCII bytes widened to UTF-16LE units are the same text in the form version 5 stores.
    let wide: Vec<u8> = bytes.iter().flat_map(|&b| [b, 0]).collect();
    Ok(ValueData::from_raw(kind, &wide))
}

fn shorten(s: &str) -> String {
    const SHOWN: usize = 80;
    if s.chars().count() <= SHOWN {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(SHOWN).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<RegistryOp>, RegistryError> {
        parse_reg(text.as_bytes(), "test.reg")
    }

    fn ops(text: &str) -> Vec<RegistryOp> {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn line_error(text: &str) -> (usize, String) {
        match parse(text).expect_err("malformed") {
            RegistryError::RegFile { line, problem, .. } => (line, problem),
            other => panic!("not a line error: {other:?}"),
        }
    }

    fn set(hive: Hive, key: &str, name: &str, value: ValueData) -> RegistryOp {
        RegistryOp::SetValue {
            hive,
            key: key.into(),
            name: name.into(),
            value,
        }
    }

    fn utf16le_with_bom(text: &str) -> Vec<u8> {
        [0xff, 0xfe]
            .into_iter()
            .chain(text.encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect()
    }

    const EVERY_TYPE: &str = "Windows Registry Editor Version 5.00\r\n\
\r\n\
; a comment\r\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Test]\r\n\
@=\"default \\\"quoted\\\" C:\\\\path\"\r\n\
\"Sz\"=\"héllo\"\r\n\
\"Expand\"=hex(2):25,00,53,00,79,00,73,00,74,00,65,00,6d,00,52,00,6f,00,6f,00,74,\\\r\n\
  00,25,00,00,00\r\n\
\"Multi\"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00\r\n\
\"Dword\"=dword:0000002a\r\n\
\"Qword\"=hex(b):01,00,00,00,00,00,00,00\r\n\
\"Bin\"=hex:01,AB,ff\r\n\
\"None\"=hex(0):\r\n\
\"Gone\"=-\r\n\
@=-\r\n\
\r\n\
[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Old]\r\n\
\r\n\
[HKLM\\SOFTWARE\\Policies\\Empty]\r\n";

    fn every_type_ops() -> Vec<RegistryOp> {
        let key = r"Policies\Test";
        let sw = Hive::Software;
        vec![
            set(
                sw,
                key,
                "",
                ValueData::Sz(r#"default "quoted" C:\path"#.into()),
            ),
            set(sw, key, "Sz", ValueData::Sz("héllo".into())),
            set(
                sw,
                key,
                "Expand",
                ValueData::ExpandSz("%SystemRoot%".into()),
            ),
            set(
                sw,
                key,
                "Multi",
                ValueData::MultiSz(vec!["a".into(), "bc".into()]),
            ),
            set(sw, key, "Dword", ValueData::Dword(42)),
            set(sw, key, "Qword", ValueData::Qword(1)),
            set(sw, key, "Bin", ValueData::Binary(vec![1, 0xab, 0xff])),
            set(
                sw,
                key,
                "None",
                ValueData::Raw {
                    kind: 0,
                    bytes: vec![],
                },
            ),
            RegistryOp::DeleteValue {
                hive: sw,
                key: key.into(),
                name: "Gone".into(),
            },
            RegistryOp::DeleteValue {
                hive: sw,
                key: key.into(),
                name: "".into(),
            },
            RegistryOp::DeleteKey {
                hive: sw,
                key: r"Policies\Old".into(),
            },
            RegistryOp::CreateKey {
                hive: sw,
                key: r"Policies\Empty".into(),
            },
        ]
    }

    #[test]
    fn every_value_form_parses_in_utf8_and_utf16le() {
        assert_eq!(ops(EVERY_TYPE), every_type_ops());
        let with_bom = [&[0xef, 0xbb, 0xbf][..], EVERY_TYPE.as_bytes()].concat();
        assert_eq!(
            parse_reg(&with_bom, "bom.reg").expect("utf-8 with bom"),
            every_type_ops()
        );
        assert_eq!(
            parse_reg(&utf16le_with_bom(EVERY_TYPE), "wide.reg").expect("utf-16le"),
            every_type_ops()
        );
        let unix = EVERY_TYPE.replace("\r\n", "\n");
        assert_eq!(ops(&unix), every_type_ops());
    }

    #[test]
    fn roots_map_to_offline_hives_in_any_case_and_abbreviation() {
        let text = "Windows Registry Editor Version 5.00\n\
[hkey_local_machine\\system\\Setup]\n\
[HKLM\\SAM\\SAM\\Domains]\n\
[HKEY_LOCAL_MACHINE\\SECURITY\\Policy]\n\
[HKLM\\COMPONENTS\\DerivedData]\n\
[HKEY_USERS\\.DEFAULT\\Control Panel]\n\
[HKU\\.DEFAULT\\Environment]\n\
[HKEY_CURRENT_USER\\Software\\Classes]\n\
[HKCU\\Console]\n\
[HKLM\\SOFTWARE]\n";
        let got: Vec<(Hive, String)> = ops(text)
            .into_iter()
            .map(|op| (op.hive(), op.key().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Hive::System, "Setup".into()),
                (Hive::Sam, r"SAM\Domains".into()),
                (Hive::Security, "Policy".into()),
                (Hive::Components, "DerivedData".into()),
                (Hive::Default, "Control Panel".into()),
                (Hive::Default, "Environment".into()),
                (Hive::Ntuser, r"Software\Classes".into()),
                (Hive::Ntuser, "Console".into()),
            ],
            "a bare hive root section changes nothing"
        );
    }

    #[test]
    fn a_section_creates_its_key_only_when_no_value_is_set_in_it() {
        let text = "Windows Registry Editor Version 5.00\n\
[HKLM\\SOFTWARE\\A]\n\
\"x\"=-\n\
[HKLM\\SOFTWARE\\B]\n\
\"y\"=dword:1\n";
        assert_eq!(
            ops(text),
            vec![
                RegistryOp::CreateKey {
                    hive: Hive::Software,
                    key: "A".into()
                },
                RegistryOp::DeleteValue {
                    hive: Hive::Software,
                    key: "A".into(),
                    name: "x".into()
                },
                set(Hive::Software, "B", "y", ValueData::Dword(1)),
            ]
        );
    }

    #[test]
    fn regedit4_files_take_ascii_string_data_as_single_bytes() {
        let text = "REGEDIT4\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\A]\n\
\"e\"=hex(2):25,77,69,6e,64,69,72,25,00\n\
\"m\"=hex(7):61,00,62,00,00\n\
\"d\"=dword:00000001\n";
        assert_eq!(
            ops(text),
            vec![
                set(
                    Hive::Software,
                    "A",
                    "e",
                    ValueData::ExpandSz("%windir%".into())
                ),
                set(
                    Hive::Software,
                    "A",
                    "m",
                    ValueData::MultiSz(vec!["a".into(), "b".into()])
                ),
                set(Hive::Software, "A", "d", ValueData::Dword(1)),
            ]
        );
        let (line, problem) = line_error("REGEDIT4\n[HKLM\\SOFTWARE\\A]\n\"e\"=hex(2):e9,00\n");
        assert_eq!(line, 3);
        assert!(problem.contains("code page"), "{problem}");
    }

    #[test]
    fn string_data_that_is_not_what_its_type_writes_stays_raw() {
        let text = "Windows Registry Editor Version 5.00\n\
[HKLM\\SOFTWARE\\A]\n\
\"unterminated\"=hex(2):61,00\n\
\"be\"=hex(5):00,00,00,01\n\
\"devprop\"=hex(ffff0012):01\n";
        assert_eq!(
            ops(text),
            vec![
                set(
                    Hive::Software,
                    "A",
                    "unterminated",
                    ValueData::Raw {
                        kind: 2,
                        bytes: vec![0x61, 0]
                    }
                ),
                set(
                    Hive::Software,
                    "A",
                    "be",
                    ValueData::Raw {
                        kind: 5,
                        bytes: vec![0, 0, 0, 1]
                    }
                ),
                set(
                    Hive::Software,
                    "A",
                    "devprop",
                    ValueData::Raw {
                        kind: 0xffff0012,
                        bytes: vec![1]
                    }
                ),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_named_by_number_and_problem() {
        let head = "Windows Registry Editor Version 5.00\n\n[HKLM\\SOFTWARE\\A]\n";
        let cases = [
            ("\"x\"=dword:123456789\n", "1 to 8 hex digits"),
            ("\"x\"=dword:xyz\n", "1 to 8 hex digits"),
            ("\"x\"=hex:1,2,345\n", "\"345\" is not one"),
            ("\"x\"=hex(2:00\n", "type number"),
            ("\"x\"=hex(zz):00\n", "type number in hex"),
            ("\"x\"=\"open\n", "no closing quote"),
            ("\"x\"=\"a\\nb\"\n", "\\n"),
            ("\"x\"=\"a\" trailing\n", "follows the closing quote"),
            ("\"x\"=str:\"a\"\n", "not a value form"),
            ("\"x\" dword:1\n", "not followed by ="),
            ("x=dword:1\n", "a value line is"),
            ("[HKLM\\SOFTWARE\\A\n", "a section line"),
            ("[HKLM\\SOFTWARE\\A\\..\\B]\n", "\"..\" component"),
            ("[HKLM\\SOFTWARE\\A\\]\n", "ends with \\"),
            ("[HKEY_CLASSES_ROOT\\.txt]\n", "HKEY_CLASSES_ROOT is a view"),
            ("[HKEY_LOCAL_MACHINE\\HARDWARE\\X]\n", "not under a hive"),
            ("[HKU\\S-1-5-21-1\\X]\n", "not under a hive"),
            ("[-HKLM\\SOFTWARE]\n", "whole SOFTWARE hive"),
            ("[-HKLM\\SOFTWARE\\B]\n\"x\"=dword:1\n", "[-key] deletion"),
            ("[HKLM\\SYSTEM]\n\"x\"=dword:1\n", "root of a hive"),
            ("\"x\"=hex:00,\\\n", "ends in the middle"),
        ];
        for (tail, want) in cases {
            let (line, problem) = line_error(&format!("{head}{tail}"));
            let want_line =
                if tail.starts_with("[-HKLM\\SOFTWARE\\B]") || tail.starts_with("[HKLM\\SYSTEM]") {
                    5
                } else {
                    4
                };
            assert_eq!(line, want_line, "{tail:?}: {problem}");
            assert!(problem.contains(want), "{tail:?}: {problem}");
        }
        let (line, problem) = line_error("Windows Registry Editor Version 5.00\n\"x\"=dword:1\n");
        assert_eq!(line, 2);
        assert!(problem.contains("before any [key]"), "{problem}");
        let (line, problem) = line_error("\n\nHello\n");
        assert_eq!(line, 3);
        assert!(problem.contains("starts with"), "{problem}");
    }

    #[test]
    fn the_error_names_the_file_and_line() {
        let err = parse_reg(
            b"Windows Registry Editor Version 5.00\n[HKLM\\SOFTWARE\\A]\n\"x\"=dword:\n",
            "payload/baseline.reg in KB1",
        )
        .expect_err("bad");
        let text = err.to_string();
        assert!(
            text.starts_with("payload/baseline.reg in KB1, line 3: dword: takes 1 to 8 hex digits"),
            "{text}"
        );
    }

    #[test]
    fn encodings_other_than_utf16le_with_bom_and_utf8_are_refused() {
        let wide_without_bom: Vec<u8> = EVERY_TYPE
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        for (bytes, want) in [
            (wide_without_bom, "byte order mark"),
            (vec![0xfe, 0xff, 0, b'W'], "big-endian"),
            (vec![0xff, 0xfe, b'W'], "odd number"),
            (vec![0xff, 0xfe, 0x00, 0xd8], "unpaired surrogate"),
            (b"REGEDIT4\n\xe9\n".to_vec(), "not UTF-8"),
        ] {
            let err = parse_reg(&bytes, "x.reg").expect_err(want);
            assert!(
                matches!(&err, RegistryError::RegFileEncoding { problem, .. } if problem.contains(want)),
                "{want}: {err}"
            );
        }
    }

    #[test]
    fn files_over_the_cap_are_refused_before_decoding() {
        let big = vec![b' '; MAX_REG_FILE_BYTES as usize + 1];
        let err = parse_reg(&big, "big.reg").expect_err("too large");
        assert!(
            matches!(err, RegistryError::RegFileTooLarge { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("over the 64 MiB"), "{err}");
    }

    #[test]
    fn data_over_what_hivex_writes_is_refused_at_its_line() {
        let hex = vec!["00"; crate::registry::MAX_VALUE_BYTES + 1].join(",");
        let (line, problem) = line_error(&format!(
            "Windows Registry Editor Version 5.00\n[HKLM\\SOFTWARE\\A]\n\"big\"=hex:{hex}\n"
        ));
        assert_eq!(line, 3);
        assert!(problem.contains("16345 bytes"), "{problem}");
    }
}
