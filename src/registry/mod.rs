//! STUB of the registry module's API (replaced by the registry branch at merge).
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Hive {
    Software,
    System,
    Default,
    Sam,
    Security,
    Components,
    Ntuser,
}
impl Hive {
    pub fn parse(s: &str) -> Option<Hive> {
        match s.to_ascii_uppercase().as_str() {
            "SOFTWARE" => Some(Hive::Software),
            "SYSTEM" => Some(Hive::System),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        "SOFTWARE"
    }
    pub fn image_path(self) -> &'static str {
        "Windows/System32/config/SOFTWARE"
    }
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ValueData {
    Sz(String),
    Dword(u32),
}
impl ValueData {
    pub fn from_toml(_kind: &str, _data: &toml::Value) -> Result<ValueData, String> {
        Ok(ValueData::Dword(1))
    }
    pub fn display(&self) -> String {
        String::new()
    }
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RegistryOp {
    SetValue { hive: Hive, key: String, name: String, value: ValueData },
    DeleteValue { hive: Hive, key: String, name: String },
    DeleteKey { hive: Hive, key: String },
    CreateKey { hive: Hive, key: String },
}
impl RegistryOp {
    pub fn hive(&self) -> Hive {
        Hive::Software
    }
    pub fn key(&self) -> &str {
        ""
    }
}
pub fn validate_key(_key: &str) -> Result<(), String> {
    Ok(())
}
pub fn parse_reg(_bytes: &[u8], _origin: &str) -> Result<Vec<RegistryOp>, RegistryError> {
    Ok(Vec::new())
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub hive: Hive,
    pub key: String,
    pub value: Option<String>,
    pub action: String,
    pub before: Option<String>,
    pub after: Option<String>,
}
pub fn apply(
    _input: &Path,
    _output: &Path,
    _ops: &[RegistryOp],
    _origin: &str,
) -> Result<Vec<Applied>, RegistryError> {
    Ok(Vec::new())
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct RegistryError;
