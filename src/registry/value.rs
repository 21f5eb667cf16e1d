//! Registry value data: the typed form packages declare, and the (type number, bytes) form a
//! hive stores.

use serde::{Deserialize, Serialize};

/// The most data one value may hold. hivex stores a value's data in one cell, but Windows
/// (hive format 1.4 and later, every hive since XP) reads data over 16,344 bytes only through
/// a big-data (`db`) record, which hivex does not write: a longer value would be misread.
pub const MAX_VALUE_BYTES: usize = 16344;

pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;

/// Value data, by registry type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ValueData {
    Sz(String),
    ExpandSz(String),
    MultiSz(Vec<String>),
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
    /// any other type number with raw bytes (`hex(n):` in a .reg file)
    Raw {
        kind: u32,
        bytes: Vec<u8>,
    },
}

impl ValueData {
    /// From a manifest's `type` and TOML `data` (sz/expand_sz: string; multi_sz: array of
    /// strings; dword: integer 0..=u32::MAX; qword: integer >= 0 (TOML ints are i64); binary:
    /// array of integers 0..=255 or a hex string "01 ab ff"). The error says what disagrees.
    pub fn from_toml(kind: &str, data: &toml::Value) -> Result<ValueData, String> {
        let value = match kind {
            "sz" => ValueData::Sz(text(kind, data)?),
            "expand_sz" => ValueData::ExpandSz(text(kind, data)?),
            "multi_sz" => {
                let toml::Value::Array(items) = data else {
                    return Err(mismatch(kind, "an array of strings", data));
                };
                let mut strings = Vec::with_capacity(items.len());
                for item in items {
                    let toml::Value::String(s) = item else {
                        return Err(mismatch(kind, "an array of strings", data));
                    };
                    if s.is_empty() {
                        // An empty string ends a REG_MULTI_SZ: the strings after it would be lost.
                        return Err(
                            "type \"multi_sz\" cannot hold an empty string (it would end the list there)"
                                .into(),
                        );
                    }
                    no_nul(kind, s)?;
                    strings.push(s.clone());
                }
                ValueData::MultiSz(strings)
            }
            "dword" => {
                let toml::Value::Integer(n) = data else {
                    return Err(mismatch(kind, "an integer from 0 to 4294967295", data));
                };
                ValueData::Dword(u32::try_from(*n).map_err(|_| {
                    format!("type \"dword\" needs an integer from 0 to 4294967295, not {n}")
                })?)
            }
            "qword" => {
                let toml::Value::Integer(n) = data else {
                    return Err(mismatch(kind, "an integer from 0", data));
                };
                ValueData::Qword(u64::try_from(*n).map_err(|_| {
                    format!(
                        "type \"qword\" needs an integer from 0 to 9223372036854775807, not {n}"
                    )
                })?)
            }
            "binary" => ValueData::Binary(binary(data)?),
            other => {
                return Err(format!(
                    "unknown type {other:?}: use sz, expand_sz, multi_sz, dword, qword or binary"
                ))
            }
        };
        value.check_size()?;
        Ok(value)
    }

    /// The registry type number and the bytes a hive stores. Strings are UTF-16LE with their
    /// terminating NUL, as Windows writes them; a multi_sz ends with one more NUL.
    pub fn to_raw(&self) -> (u32, Vec<u8>) {
        match self {
            ValueData::Sz(s) => (REG_SZ, utf16z(s)),
            ValueData::ExpandSz(s) => (REG_EXPAND_SZ, utf16z(s)),
            ValueData::MultiSz(list) => {
                let mut bytes: Vec<u8> = list.iter().flat_map(|s| utf16z(s)).collect();
                bytes.extend_from_slice(&[0, 0]);
                (REG_MULTI_SZ, bytes)
            }
            ValueData::Dword(n) => (REG_DWORD, n.to_le_bytes().to_vec()),
            ValueData::Qword(n) => (REG_QWORD, n.to_le_bytes().to_vec()),
            ValueData::Binary(bytes) => (REG_BINARY, bytes.clone()),
            ValueData::Raw { kind, bytes } => (*kind, bytes.clone()),
        }
    }

    /// The typed form of stored data when it is exactly what that type writes (so that
    /// `to_raw` gives the same bytes back); anything else stays `Raw`, byte for byte.
    pub fn from_raw(kind: u32, bytes: &[u8]) -> ValueData {
        let typed = match kind {
            REG_SZ => utf16z_text(bytes).map(ValueData::Sz),
            REG_EXPAND_SZ => utf16z_text(bytes).map(ValueData::ExpandSz),
            REG_MULTI_SZ => multi_sz_strings(bytes).map(ValueData::MultiSz),
            REG_DWORD => bytes
                .try_into()
                .ok()
                .map(|b| ValueData::Dword(u32::from_le_bytes(b))),
            REG_QWORD => bytes
                .try_into()
                .ok()
                .map(|b| ValueData::Qword(u64::from_le_bytes(b))),
            REG_BINARY => Some(ValueData::Binary(bytes.to_vec())),
            _ => None,
        };
        match typed {
            Some(value) if value.to_raw().1 == bytes => value,
            _ => ValueData::Raw {
                kind,
                bytes: bytes.to_vec(),
            },
        }
    }

    /// The data's size limit, as an error naming the size.
    pub fn check_size(&self) -> Result<(), String> {
        let size = self.to_raw().1.len();
        if size > MAX_VALUE_BYTES {
            return Err(format!(
                "the data is {size} bytes, over the {MAX_VALUE_BYTES} bytes ois writes into a value (longer data needs a big-data record, which hivex does not write)"
            ));
        }
        Ok(())
    }

    /// Short human form for logs and reports: `dword:0x00000001`, `sz:"text"`, …; long data
    /// is cut short with its full size.
    pub fn display(&self) -> String {
        match self {
            ValueData::Sz(s) => format!("sz:{}", quoted(s)),
            ValueData::ExpandSz(s) => format!("expand_sz:{}", quoted(s)),
            ValueData::MultiSz(list) => {
                let shown: Vec<String> = list.iter().take(8).map(|s| quoted(s)).collect();
                let more = if list.len() > 8 {
                    format!(", … ({} strings)", list.len())
                } else {
                    String::new()
                };
                format!("multi_sz:[{}{more}]", shown.join(", "))
            }
            ValueData::Dword(n) => format!("dword:0x{n:08x}"),
            ValueData::Qword(n) => format!("qword:0x{n:016x}"),
            ValueData::Binary(bytes) => format!("binary:{}", hex_bytes(bytes)),
            ValueData::Raw { kind, bytes } => format!("hex({kind:x}):{}", hex_bytes(bytes)),
        }
    }
}

const SHOWN_CHARS: usize = 120;
const SHOWN_BYTES: usize = 32;

fn quoted(s: &str) -> String {
    let count = s.chars().count();
    if count <= SHOWN_CHARS {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}… ({count} characters)")
}

fn hex_bytes(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes
        .iter()
        .take(SHOWN_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut out = shown.join(" ");
    if bytes.len() > SHOWN_BYTES {
        out.push_str(&format!(" … ({} bytes)", bytes.len()));
    }
    out
}

/// UTF-16LE with a terminating NUL.
pub(crate) fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(|unit| unit.to_le_bytes())
        .collect()
}

/// The text of UTF-16LE bytes ending in one NUL; None if they are not exactly that.
fn utf16z_text(bytes: &[u8]) -> Option<String> {
    let units = utf16_units(bytes)?;
    let (&last, text) = units.split_last()?;
    if last != 0 || text.contains(&0) {
        return None;
    }
    String::from_utf16(text).ok()
}

/// The strings of a REG_MULTI_SZ: each NUL-terminated, then one more NUL.
fn multi_sz_strings(bytes: &[u8]) -> Option<Vec<String>> {
    let units = utf16_units(bytes)?;
    let body = units.strip_suffix(&[0])?;
    if body.is_empty() {
        return Some(Vec::new());
    }
    let body = body.strip_suffix(&[0])?;
    body.split(|&unit| unit == 0)
        .map(|s| {
            if s.is_empty() {
                None
            } else {
                String::from_utf16(s).ok()
            }
        })
        .collect()
}

fn utf16_units(bytes: &[u8]) -> Option<Vec<u16>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect(),
    )
}

fn text(kind: &str, data: &toml::Value) -> Result<String, String> {
    let toml::Value::String(s) = data else {
        return Err(mismatch(kind, "a string", data));
    };
    no_nul(kind, s)?;
    Ok(s.clone())
}

fn no_nul(kind: &str, s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err(format!(
            "type {kind:?} cannot hold a NUL character (it would end the string there)"
        ));
    }
    Ok(())
}

fn binary(data: &toml::Value) -> Result<Vec<u8>, String> {
    match data {
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::Integer(n) => u8::try_from(*n)
                    .map_err(|_| format!("type \"binary\" needs bytes from 0 to 255, not {n}")),
                other => Err(mismatch(
                    "binary",
                    "an array of integers from 0 to 255 or a hex string",
                    other,
                )),
            })
            .collect(),
        toml::Value::String(s) => {
            let mut bytes = Vec::new();
            for token in s.split(|c: char| c.is_whitespace() || c == ',') {
                if !token.len().is_multiple_of(2) {
                    return Err(format!(
                        "type \"binary\": the hex string {s:?} has {token:?}, not whole bytes (two hex digits each)"
                    ));
                }
                for pair in token.as_bytes().chunks_exact(2) {
                    let digits = std::str::from_utf8(pair).unwrap_or("");
                    let byte = u8::from_str_radix(digits, 16).map_err(|_| {
                        format!(
                            "type \"binary\": the hex string {s:?} has {token:?}, which is not hex"
                        )
                    })?;
                    bytes.push(byte);
                }
            }
            Ok(bytes)
        }
        other => Err(mismatch(
            "binary",
            "an array of integers from 0 to 255 or a hex string",
            other,
        )),
    }
}

fn mismatch(kind: &str, wanted: &str, data: &toml::Value) -> String {
    let shown = data.to_string();
    let shown = if shown.chars().count() > 60 {
        format!("{}…", shown.chars().take(60).collect::<String>())
    } else {
        shown
    };
    format!(
        "type {kind:?} needs {wanted}, not {} {shown}",
        article(data.type_str())
    )
}

fn article(noun: &str) -> String {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {noun}")
    } else {
        format!("a {noun}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_data(text: &str) -> toml::Value {
        let table: toml::Table = toml::from_str(&format!("data = {text}")).expect("toml");
        table["data"].clone()
    }

    #[test]
    fn from_toml_takes_each_type_in_its_form() {
        let cases = [
            ("sz", r#""text""#, ValueData::Sz("text".into())),
            (
                "expand_sz",
                r#""%SystemRoot%\\x""#,
                ValueData::ExpandSz(r"%SystemRoot%\x".into()),
            ),
            (
                "multi_sz",
                r#"["a", "b"]"#,
                ValueData::MultiSz(vec!["a".into(), "b".into()]),
            ),
            ("multi_sz", "[]", ValueData::MultiSz(vec![])),
            ("dword", "4294967295", ValueData::Dword(u32::MAX)),
            (
                "qword",
                "9223372036854775807",
                ValueData::Qword(i64::MAX as u64),
            ),
            (
                "binary",
                "[1, 171, 255]",
                ValueData::Binary(vec![1, 0xab, 0xff]),
            ),
            (
                "binary",
                r#""01 ab FF""#,
                ValueData::Binary(vec![1, 0xab, 0xff]),
            ),
            (
                "binary",
                r#""01abff""#,
                ValueData::Binary(vec![1, 0xab, 0xff]),
            ),
            ("binary", r#""""#, ValueData::Binary(vec![])),
        ];
        for (kind, data, want) in cases {
            assert_eq!(
                ValueData::from_toml(kind, &toml_data(data)),
                Ok(want),
                "{kind} {data}"
            );
        }
    }

    #[test]
    fn from_toml_says_what_disagrees() {
        let cases = [
            (
                "dword",
                r#""1""#,
                "type \"dword\" needs an integer from 0 to 4294967295, not a string \"1\"",
            ),
            ("dword", "-1", "not -1"),
            ("dword", "4294967296", "not 4294967296"),
            ("qword", "-5", "not -5"),
            ("sz", "1", "type \"sz\" needs a string, not an integer 1"),
            ("sz", r#""a\u0000b""#, "NUL"),
            ("multi_sz", r#""a""#, "an array of strings"),
            ("multi_sz", r#"["a", 1]"#, "an array of strings"),
            ("multi_sz", r#"["a", ""]"#, "empty string"),
            ("binary", "[256]", "bytes from 0 to 255, not 256"),
            ("binary", r#""0g""#, "not hex"),
            ("binary", r#""abc""#, "not whole bytes"),
            ("binary", "true", "not a boolean true"),
            ("word", "1", "unknown type \"word\""),
        ];
        for (kind, data, want) in cases {
            let err = ValueData::from_toml(kind, &toml_data(data)).expect_err(data);
            assert!(err.contains(want), "{kind} {data}: {err}");
        }
        let big = format!("[{}]", vec!["0"; MAX_VALUE_BYTES + 1].join(","));
        let err = ValueData::from_toml("binary", &toml_data(&big)).expect_err("big");
        assert!(err.contains("16345 bytes, over the 16344"), "{err}");
    }

    #[test]
    fn raw_bytes_are_what_windows_writes_and_read_back_typed() {
        assert_eq!(
            ValueData::Sz("Hé".into()).to_raw(),
            (1, vec![b'H', 0, 0xe9, 0, 0, 0])
        );
        assert_eq!(
            ValueData::MultiSz(vec!["a".into(), "b".into()]).to_raw(),
            (7, vec![b'a', 0, 0, 0, b'b', 0, 0, 0, 0, 0])
        );
        assert_eq!(ValueData::MultiSz(vec![]).to_raw(), (7, vec![0, 0]));
        assert_eq!(
            ValueData::Qword(1).to_raw(),
            (11, vec![1, 0, 0, 0, 0, 0, 0, 0])
        );
        for value in [
            ValueData::Sz("".into()),
            ValueData::ExpandSz("%windir%".into()),
            ValueData::MultiSz(vec![]),
            ValueData::MultiSz(vec!["x".into(), "yz".into()]),
            ValueData::Dword(7),
            ValueData::Qword(u64::MAX),
            ValueData::Binary(vec![]),
            ValueData::Raw {
                kind: 0,
                bytes: vec![1],
            },
            ValueData::Raw {
                kind: 0xffff0012,
                bytes: vec![],
            },
        ] {
            let (kind, bytes) = value.to_raw();
            assert_eq!(ValueData::from_raw(kind, &bytes), value);
        }
        // Stored forms a typed value would not give back byte for byte stay raw.
        for (kind, bytes) in [
            (1, vec![b'a', 0]),                   // no terminating NUL
            (1, vec![b'a', 0, 0, 0, 0, 0]),       // two
            (1, vec![b'a']),                      // odd length
            (2, vec![0x00, 0xd8, 0, 0]),          // unpaired surrogate
            (4, vec![1, 0, 0]),                   // short dword
            (11, vec![1, 0, 0, 0]),               // short qword
            (7, vec![b'a', 0, 0, 0]),             // one NUL short
            (7, vec![b'a', 0, 0, 0, 0, 0, 0, 0]), // an empty string inside
        ] {
            assert_eq!(
                ValueData::from_raw(kind, &bytes),
                ValueData::Raw {
                    kind,
                    bytes: bytes.clone()
                },
                "{kind} {bytes:?}"
            );
        }
    }

    #[test]
    fn display_is_short_and_typed() {
        assert_eq!(ValueData::Dword(1).display(), "dword:0x00000001");
        assert_eq!(ValueData::Qword(2).display(), "qword:0x0000000000000002");
        assert_eq!(ValueData::Sz("a \"b\"".into()).display(), r#"sz:"a \"b\"""#);
        assert_eq!(
            ValueData::MultiSz(vec!["a".into(), "b".into()]).display(),
            r#"multi_sz:["a", "b"]"#
        );
        assert_eq!(ValueData::Binary(vec![1, 0xab]).display(), "binary:01 ab");
        assert_eq!(
            ValueData::Raw {
                kind: 0,
                bytes: vec![]
            }
            .display(),
            "hex(0):"
        );
        let long = ValueData::Binary(vec![0; 100]).display();
        assert!(long.ends_with("00 … (100 bytes)"), "{long}");
        let long = ValueData::Sz("x".repeat(500)).display();
        assert!(long.ends_with("… (500 characters)"), "{long}");
    }
}
