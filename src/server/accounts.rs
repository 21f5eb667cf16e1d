//! Accounts of the site server (table `server_accounts`): a name, a role and the argon2 hash of
//! its API token. The token is shown once, when the account is added; only its hash is kept.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::fsutil::now_rfc3339;
use crate::site::{Database, SiteError};

/// Admins change things; read-only analysts see everything and change nothing; a pull DP's
/// agent calls only the `/api/v1/pull/…` routes, and only for the DP it registered or claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Role {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "read-only")]
    ReadOnly,
    #[serde(rename = "dp-agent")]
    DpAgent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
            Role::DpAgent => "dp-agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "read-only" | "readonly" => Ok(Role::ReadOnly),
            "dp-agent" => Ok(Role::DpAgent),
            other => Err(format!(
                "unknown role {other:?}: use admin, read-only or dp-agent"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account name {0:?} is not valid: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    InvalidName(String),
    #[error("account {0} already exists: remove it first (`ois site user remove {0}`) to issue a new token")]
    Exists(String),
    #[error("no account {0}: see `ois site user list`")]
    NotFound(String),
    #[error("cannot hash the token of account {name}: {reason}")]
    Hash { name: String, reason: String },
    #[error("cannot make a token: the system's random source failed ({0})")]
    Random(String),
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// Token prefix: tells a leaked token apart in logs and secret scanners.
const TOKEN_PREFIX: &str = "ois_";

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, AccountError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(crate::fsutil::hex(&buf))
}

/// Adds an account and returns it with its token, which is not stored and cannot be shown again.
pub fn add(db: &Database, name: &str, role: Role) -> Result<(Account, String), AccountError> {
    let name = name.trim();
    if !valid_name(name) {
        return Err(AccountError::InvalidName(name.to_string()));
    }
    let secret = random_hex(32)?;
    let tx = db.unchecked_transaction().map_err(|e| db.error(e))?;
    if find(db, name)?.is_some() {
        return Err(AccountError::Exists(name.to_string()));
    }
    let created_at = now_rfc3339();
    db.execute(
        "INSERT INTO server_accounts (name, role, token_hash, created_at) VALUES (?1, ?2, '', ?3)",
        params![name, role.as_str(), created_at],
    )
    .map_err(|e| db.error(e))?;
    let id = db.last_insert_rowid();
    // The row id in the token finds the one hash to check, instead of trying every account's.
    let token = format!("{TOKEN_PREFIX}{id}_{secret}");
    let salt = SaltString::from_b64(&random_b64_salt()?).map_err(|e| AccountError::Hash {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    let hash = Argon2::default()
        .hash_password(token.as_bytes(), &salt)
        .map_err(|e| AccountError::Hash {
            name: name.to_string(),
            reason: e.to_string(),
        })?
        .to_string();
    db.execute(
        "UPDATE server_accounts SET token_hash = ?2 WHERE id = ?1",
        params![id, hash],
    )
    .map_err(|e| db.error(e))?;
    tx.commit().map_err(|e| db.error(e))?;
    tracing::info!("server account {name} added ({})", role.as_str());
    Ok((
        Account {
            id,
            name: name.to_string(),
            role,
            created_at,
        },
        token,
    ))
}

fn random_b64_salt() -> Result<String, AccountError> {
    // 16 random bytes as unpadded standard base64 (what SaltString expects), without a base64
    // crate: hex digits are valid base64 characters.
    random_hex(16)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, String)> {
    let role: String = r.get(2)?;
    Ok((
        Account {
            id: r.get(0)?,
            name: r.get(1)?,
            role: role.parse().unwrap_or(Role::ReadOnly),
            created_at: r.get(3)?,
        },
        r.get(4)?,
    ))
}

const COLUMNS: &str = "id, name, role, created_at, token_hash";

fn find(db: &Database, name: &str) -> Result<Option<Account>, AccountError> {
    Ok(db
        .query_row(
            &format!("SELECT {COLUMNS} FROM server_accounts WHERE name = ?1"),
            [name],
            row,
        )
        .optional()
        .map_err(|e| db.error(e))?
        .map(|(a, _)| a))
}

pub fn list(db: &Database) -> Result<Vec<Account>, AccountError> {
    let mut stmt = db
        .prepare(&format!(
            "SELECT {COLUMNS} FROM server_accounts ORDER BY name"
        ))
        .map_err(|e| db.error(e))?;
    let rows = stmt
        .query_map([], row)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.error(e))?;
    Ok(rows.into_iter().map(|(a, _)| a).collect())
}

/// Whether any account exists: without one, loopback requests are the local admin.
pub fn any(db: &Database) -> Result<bool, AccountError> {
    db.query_row("SELECT EXISTS (SELECT 1 FROM server_accounts)", [], |r| {
        r.get(0)
    })
    .map_err(|e| AccountError::Site(db.error(e)))
}

/// Removes an account; its token stops working at once, sessions included.
pub fn remove(db: &Database, name: &str) -> Result<Account, AccountError> {
    let account = find(db, name.trim())?.ok_or_else(|| AccountError::NotFound(name.into()))?;
    db.execute("DELETE FROM server_accounts WHERE id = ?1", [account.id])
        .map_err(|e| db.error(e))?;
    tracing::info!("server account {} removed", account.name);
    Ok(account)
}

/// Tokens already checked against their hash, by the SHA-256 of the token: argon2 is slow on
/// purpose, and a console makes many requests. An entry counts only while the account still
/// has that hash, so removing an account (from any process) revokes its token at once.
static VERIFIED: Mutex<Option<HashMap<[u8; 32], String>>> = Mutex::new(None);

/// The account a token belongs to, with its stored hash (sessions re-check it); `None` for a
/// token that matches no account.
pub(crate) fn verify(
    db: &Database,
    token: &str,
) -> Result<Option<(Account, String)>, AccountError> {
    use sha2::Digest;
    let Some(id) = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(id, _)| id.parse::<i64>().ok())
    else {
        return Ok(None);
    };
    let Some((account, hash)) = by_id(db, id)? else {
        return Ok(None);
    };
    let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let mut cache = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    if cache.as_ref().and_then(|c| c.get(&key)) == Some(&hash) {
        return Ok(Some((account, hash)));
    }
    let ok = PasswordHash::new(&hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(token.as_bytes(), &parsed)
            .is_ok()
    });
    if !ok {
        return Ok(None);
    }
    cache
        .get_or_insert_with(HashMap::new)
        .insert(key, hash.clone());
    Ok(Some((account, hash)))
}

pub(crate) fn by_id(db: &Database, id: i64) -> Result<Option<(Account, String)>, AccountError> {
    db.query_row(
        &format!("SELECT {COLUMNS} FROM server_accounts WHERE id = ?1"),
        [id],
        row,
    )
    .optional()
    .map_err(|e| AccountError::Site(db.error(e)))
}
