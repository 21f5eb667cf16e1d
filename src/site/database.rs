//! The site database (SQLite) and its versioned migrations. Each module owns its tables and
//! hands its migrations to [`Database::open`] through [`Migrations`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::SiteError;

/// A module's schema history: the n-th entry upgrades its tables from version n to n+1.
#[derive(Debug)]
pub struct Migrations {
    pub module: &'static str,
    pub steps: &'static [&'static str],
}

/// Every module's migrations, in the order their tables depend on each other. The engine
/// registers them (`ois::SCHEMA`): storage knows no module above it.
pub type Schema = &'static [&'static Migrations];

pub struct Database {
    conn: Connection,
    path: PathBuf,
}

impl std::ops::Deref for Database {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Database {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// A damaged database can still answer the queries that miss its damaged pages, and take
/// writes: each process checks every database it opens once, before using it. On a site
/// database of a few MiB `quick_check` takes milliseconds.
fn check_once(conn: &Connection, path: &Path) -> Result<(), SiteError> {
    static CHECKED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.contains(path) {
        return Ok(());
    }
    let mut problems: Vec<String> = Vec::new();
    let result = conn.prepare("PRAGMA quick_check(5)").and_then(|mut stmt| {
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            problems.push(row?);
        }
        Ok(())
    });
    let problem = match result {
        Err(e) => Some(e.to_string()),
        Ok(()) if problems != ["ok"] => Some(problems.join("; ")),
        Ok(()) => None,
    };
    if let Some(problem) = problem {
        return Err(SiteError::DatabaseDamaged {
            path: path.to_path_buf(),
            problem,
        });
    }
    checked.insert(path.to_path_buf());
    Ok(())
}

impl Database {
    pub fn open(path: &Path, schema: Schema) -> Result<Database, SiteError> {
        let err = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                SiteError::DatabaseDamaged {
                    path: path.to_path_buf(),
                    problem: source.to_string(),
                }
            }
            _ => SiteError::Database {
                path: path.to_path_buf(),
                source,
            },
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(err)?;
        check_once(&conn, path)?;
        let mut db = Database {
            conn,
            path: path.to_path_buf(),
        };
        db.migrate(schema).map_err(err)?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wraps a rusqlite error with the database path.
    pub fn error(&self, source: rusqlite::Error) -> SiteError {
        SiteError::Database {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self, schema: Schema) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                module TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        )?;
        for m in schema {
            let current: usize = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE module = ?1",
                    [m.module],
                    |r| r.get::<_, i64>(0),
                )
                .map(|v| v as usize)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    e => Err(e),
                })?;
            for (i, step) in m.steps.iter().enumerate().skip(current) {
                tracing::info!(
                    "migrating site database: {} schema {} -> {}",
                    m.module,
                    i,
                    i + 1
                );
                tx.execute_batch(step)?;
            }
            if m.steps.len() > current {
                tx.execute(
                    "INSERT INTO schema_migrations (module, version) VALUES (?1, ?2)
                     ON CONFLICT(module) DO UPDATE SET version = excluded.version",
                    rusqlite::params![m.module, m.steps.len() as i64],
                )?;
            }
        }
        tx.commit()
    }
}
