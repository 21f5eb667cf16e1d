//! What an index's SOFTWARE registry hive says about it: its build (`CurrentVersion`) and the
//! Windows packages Component Based Servicing recorded, read straight from the WIM's blobs
//! with nt-hive.
//!
//! A hive inside an image is untrusted input. Three things keep a damaged or crafted one from
//! hurting the process: the size cap before it is read, a bound on the cells a walk may visit
//! (lists pointing at the same cells again would otherwise multiply the work), and catching
//! the panics nt-hive raises on some damaged hives.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use nt_hive::{Hive, KeyNode, KeyValue, KeyValueData, KeyValueDataType, NtHiveError};

use crate::wim::{Wim, WimError};

// A panic inside nt-hive is how some damaged hives surface (see `catch_quietly`); with
// panic = "abort" one would end the process instead of being reported as damage.
#[cfg(panic = "abort")]
compile_error!("ois reads untrusted registry hives and needs panics to unwind: do not build it with panic = \"abort\"");

/// Where an index keeps its SOFTWARE hive.
pub const SOFTWARE_HIVE: &str = "Windows/System32/config/SOFTWARE";
/// Real SOFTWARE hives are 50–150 MiB; a larger one is refused before it is read.
pub const MAX_HIVE_BYTES: u64 = 512 << 20;

const CURRENT_VERSION: &str = r"Microsoft\Windows NT\CurrentVersion";
const CBS_PACKAGES: &str = r"Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages";

/// The smallest cells a walk can meet: a key (`nk`: 4-byte size, 76-byte header) and a value
/// (`vk`: 4-byte size, 20-byte header). Charging these against the hive's size bounds a walk
/// by what the hive can really hold.
const KEY_CELL_BYTES: usize = 80;
const VALUE_CELL_BYTES: usize = 24;

/// What an index's SOFTWARE hive says about its build and its Windows packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HiveFacts {
    /// `Microsoft\Windows NT\CurrentVersion`: CurrentBuild (REG_SZ, parsed), UBR (DWORD),
    /// CurrentMajorVersionNumber / CurrentMinorVersionNumber (DWORD), EditionID, DisplayVersion,
    /// ProductName (REG_SZ). Missing or wrongly typed values are None (not an error).
    pub current_build: Option<u32>,
    pub ubr: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub edition_id: Option<String>,
    pub display_version: Option<String>,
    pub product_name: Option<String>,
    /// `Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\<identity>`:
    /// each subkey name (the package identity string, as written) with its `CurrentState`
    /// DWORD (None when the value is absent or not a DWORD). Sorted by identity.
    pub packages: Vec<HivePackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HivePackage {
    pub identity: String,
    pub current_state: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum HiveError {
    #[error("{origin} is {size} bytes, over the {} MiB ois reads of a SOFTWARE hive (real ones are 50–150 MiB): it was not read, and this index's Windows packages are taken from Windows/servicing/Packages only", limit >> 20)]
    TooLarge {
        origin: String,
        size: u64,
        limit: u64,
    },
    #[error("{origin} was not cleanly unloaded (its sequence numbers {primary} and {secondary} differ): the image was captured from a running system, or the hive's transaction logs (SOFTWARE.LOG1/.LOG2) were not applied. ois does not read such a hive and takes this index's Windows packages from Windows/servicing/Packages only; loading and unloading the hive once on Windows (reg load / reg unload) applies its logs")]
    NotCleanlyUnloaded {
        origin: String,
        primary: u32,
        secondary: u32,
    },
    #[error("{origin} is not a readable registry hive: {detail}. The image's registry is damaged, or the WIM is (`wimlib-imagex verify` tells which): capture the image again from a sound system")]
    Damaged { origin: String, detail: String },
    // Boxed: WimError is large, and Results carrying this error should stay small.
    #[error("cannot read {origin}: {source}")]
    Wim {
        origin: String,
        source: Box<WimError>,
    },
}

/// Parses a SOFTWARE hive's bytes. `origin` names it in errors
/// (e.g. "Windows/System32/config/SOFTWARE in index 2 of /x/install.wim").
pub fn parse(bytes: &[u8], origin: &str) -> Result<HiveFacts, HiveError> {
    let damaged = |detail: String| HiveError::Damaged {
        origin: origin.to_string(),
        detail,
    };
    // nt-hive panics on a wrong signature (it names the field's offset, which is 0 there).
    if !bytes.starts_with(b"regf") {
        return Err(damaged(
            "it does not start with the registry hive signature \"regf\"".into(),
        ));
    }
    match catch_quietly(|| facts(bytes)) {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(Fault::Format(NtHiveError::SequenceNumberMismatch { primary, secondary }))) => {
            // nt-hive compares the sequence numbers before the checksum; Windows writes a
            // valid checksum with each of them, so only then is the hive dirty, not damaged.
            if crate::registry::checksum_holds(bytes) {
                Err(HiveError::NotCleanlyUnloaded {
                    origin: origin.to_string(),
                    primary,
                    secondary,
                })
            } else {
                Err(damaged(format!(
                    "its base block's checksum does not match (and its sequence numbers {primary} and {secondary} differ)"
                )))
            }
        }
        Ok(Err(Fault::Format(e))) => Err(damaged(e.to_string())),
        Ok(Err(Fault::Repeats { under })) => Err(damaged(format!(
            "the lists under {under} point at the same cells again and again, more than its {} bytes can hold",
            bytes.len()
        ))),
        Ok(Err(Fault::Twice(identity))) => Err(damaged(format!(
            "{CBS_PACKAGES} lists {identity} twice"
        ))),
        Err(panic) => Err(damaged(format!("the hive reader stopped on it ({panic})"))),
    }
}

/// Reads the SOFTWARE hive of `index` straight from the WIM (nothing is extracted) and parses
/// it. Ok(None) when the index has no such file (a WinPE-like or bare test image). A hive over
/// [`MAX_HIVE_BYTES`], a damaged hive, or one nt-hive refuses is an Err naming the file, index
/// and WIM.
pub fn read(wim: &Wim, index: u32) -> Result<Option<HiveFacts>, HiveError> {
    read_with_limit(wim, index, MAX_HIVE_BYTES)
}

fn read_with_limit(wim: &Wim, index: u32, limit: u64) -> Result<Option<HiveFacts>, HiveError> {
    let origin = format!(
        "{SOFTWARE_HIVE} in index {index} of {}",
        wim.path().display()
    );
    let wim_error = |source: WimError| HiveError::Wim {
        origin: origin.clone(),
        source: Box::new(source),
    };
    let Some(entry) = wim.entry(index, SOFTWARE_HIVE).map_err(wim_error)? else {
        return Ok(None);
    };
    if entry.is_dir {
        return Err(HiveError::Damaged {
            origin,
            detail: "it is a directory".into(),
        });
    }
    if entry.size > limit {
        return Err(HiveError::TooLarge {
            origin,
            size: entry.size,
            limit,
        });
    }
    let bytes = wim
        .files()
        .and_then(|mut files| files.read(&entry, limit))
        .map_err(wim_error)?;
    parse(&bytes, &origin).map(Some)
}

/// Why a walk stopped, before it is named for the caller.
enum Fault {
    /// nt-hive refused a structure.
    Format(NtHiveError),
    /// The walk would visit more cells than the hive holds.
    Repeats { under: &'static str },
    /// One package identity came twice (case-insensitively, as Windows compares key names).
    Twice(String),
}

impl From<NtHiveError> for Fault {
    fn from(e: NtHiveError) -> Self {
        Fault::Format(e)
    }
}

/// Cell bytes a walk may still visit. A healthy hive is a tree, so a walk visits each cell at
/// most once and cannot visit more bytes than the hive has; index roots or value lists that
/// point at the same cells again would otherwise repeat the work without bound.
struct Budget(usize);

impl Budget {
    fn spend(&mut self, bytes: usize, under: &'static str) -> Result<(), Fault> {
        self.0 = self.0.checked_sub(bytes).ok_or(Fault::Repeats { under })?;
        Ok(())
    }
}

fn facts(bytes: &[u8]) -> Result<HiveFacts, Fault> {
    let hive = Hive::new(bytes)?;
    let root = hive.root_key_node()?;
    let mut budget = Budget(bytes.len());
    let mut facts = HiveFacts::default();
    if let Some(key) = root.subpath(CURRENT_VERSION).transpose()? {
        for value in values(&key, &mut budget, CURRENT_VERSION)? {
            let name = value.name()?;
            if name == "CurrentBuild" {
                facts.current_build = string(&value)?.and_then(|s| s.trim().parse().ok());
            } else if name == "UBR" {
                facts.ubr = dword(&value)?;
            } else if name == "CurrentMajorVersionNumber" {
                facts.major = dword(&value)?;
            } else if name == "CurrentMinorVersionNumber" {
                facts.minor = dword(&value)?;
            } else if name == "EditionID" {
                facts.edition_id = string(&value)?;
            } else if name == "DisplayVersion" {
                facts.display_version = string(&value)?;
            } else if name == "ProductName" {
                facts.product_name = string(&value)?;
            }
        }
    }
    if let Some(key) = root.subpath(CBS_PACKAGES).transpose()? {
        facts.packages = packages(&key, &mut budget)?;
    }
    Ok(facts)
}

fn packages(key: &KeyNode<&[u8]>, budget: &mut Budget) -> Result<Vec<HivePackage>, Fault> {
    let mut packages = Vec::new();
    let Some(subkeys) = key.subkeys().transpose()? else {
        return Ok(packages);
    };
    for subkey in subkeys {
        budget.spend(KEY_CELL_BYTES, CBS_PACKAGES)?;
        let subkey = subkey?;
        let mut current_state = None;
        for value in values(&subkey, budget, CBS_PACKAGES)? {
            if value.name()? == "CurrentState" {
                current_state = dword(&value)?;
            }
        }
        packages.push(HivePackage {
            identity: subkey.name()?.to_string_lossy(),
            current_state,
        });
    }
    let mut seen = HashSet::with_capacity(packages.len());
    if let Some(twice) = packages
        .iter()
        .find(|p| !seen.insert(p.identity.to_uppercase()))
    {
        return Err(Fault::Twice(twice.identity.clone()));
    }
    packages.sort_by(|a, b| a.identity.cmp(&b.identity));
    Ok(packages)
}

/// The values of `key`, each charged to `budget`.
fn values<'h>(
    key: &KeyNode<'h, &'h [u8]>,
    budget: &mut Budget,
    under: &'static str,
) -> Result<Vec<KeyValue<'h, &'h [u8]>>, Fault> {
    let mut out = Vec::new();
    for value in key.values().transpose()?.into_iter().flatten() {
        budget.spend(VALUE_CELL_BYTES, under)?;
        out.push(value?);
    }
    Ok(out)
}

/// A REG_DWORD's number; None for any other type or a size other than four bytes.
fn dword(value: &KeyValue<&[u8]>) -> Result<Option<u32>, Fault> {
    if !matches!(value.data_type(), Ok(KeyValueDataType::RegDWord)) {
        return Ok(None);
    }
    Ok(match value.data()? {
        KeyValueData::Small(data) => data.try_into().ok().map(u32::from_le_bytes),
        KeyValueData::Big(_) => None,
    })
}

/// A REG_SZ's text, up to its first NUL (writers often store one), undecodable UTF-16 replaced;
/// None for any other type.
fn string(value: &KeyValue<&[u8]>) -> Result<Option<String>, Fault> {
    if !matches!(value.data_type(), Ok(KeyValueDataType::RegSZ)) {
        return Ok(None);
    }
    let data = value.data()?.into_vec()?;
    let units = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0);
    Ok(Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    ))
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, turning a panic into its message. nt-hive panics on some damaged hives (an
/// assertion on a cell offset of 0xFFFFFFFF, an overflow on a zero cell size: issue
/// ColinFinck/nt-hive#7). It forbids unsafe code and `f` only reads a byte slice, so nothing
/// is left half-changed by the unwind. The panic message is kept for the error instead of
/// being printed: the panic hook is wrapped once to stay silent on a thread while it runs `f`,
/// and behaves as before everywhere else.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static WRAP_HOOK: Once = Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{message}{place}")));
            } else {
                previous(info);
            }
        }));
    });
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was_quiet));
    result.map_err(|_| {
        CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| "a panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wim::{Compression, Progress};

    /// A WIM of one index holding `bytes` at the SOFTWARE hive's path.
    fn wim_with_hive(dir: &std::path::Path, bytes: &[u8]) -> Wim {
        let tree = dir.join("tree");
        let config = tree.join("Windows/System32/config");
        std::fs::create_dir_all(&config).expect("mkdir");
        std::fs::write(config.join("SOFTWARE"), bytes).expect("write hive");
        let wim = Wim::create(Compression::Lzx).expect("create");
        wim.add_image(&tree, "one").expect("capture");
        let path = dir.join("one.wim");
        wim.write(&path, false, 1, &mut |_| Progress::Continue)
            .expect("write");
        Wim::open(&path, false).expect("open")
    }

    #[test]
    fn a_hive_over_the_cap_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not a hive at all: were it read, it would be refused as damaged instead.
        let wim = wim_with_hive(dir.path(), &[0x5a; 8192]);
        let err = read_with_limit(&wim, 1, 4096).expect_err("over the cap");
        assert!(
            matches!(
                err,
                HiveError::TooLarge {
                    size: 8192,
                    limit: 4096,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{SOFTWARE_HIVE} in index 1 of {} is 8192 bytes",
                wim.path().display()
            )),
            "{text}"
        );
        assert!(text.contains("Windows/servicing/Packages"), "{text}");
        let err = read_with_limit(&wim, 1, 8192).expect_err("garbage");
        assert!(matches!(err, HiveError::Damaged { .. }), "{err:?}");
    }

    #[test]
    fn a_directory_at_the_hive_path_is_not_a_hive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("Windows/System32/config/SOFTWARE")).expect("mkdir");
        let wim = Wim::create(Compression::Lzx).expect("create");
        wim.add_image(&tree, "one").expect("capture");
        let path = dir.path().join("one.wim");
        wim.write(&path, false, 1, &mut |_| Progress::Continue)
            .expect("write");
        let wim = Wim::open(&path, false).expect("open");
        let err = read(&wim, 1).expect_err("a directory");
        assert!(err.to_string().contains("it is a directory"), "{err}");
    }

    #[test]
    fn a_panic_is_caught_with_its_message_and_the_hook_stays_for_others() {
        let caught = catch_quietly(|| -> u32 { panic!("cell at 0xffffffff") });
        let message = caught.expect_err("caught");
        assert!(message.starts_with("cell at 0xffffffff at "), "{message}");
        assert!(message.contains("hive.rs"), "{message}");
        assert_eq!(catch_quietly(|| 7), Ok(7));
        assert!(!QUIET.with(Cell::get), "quiet only while catching");
    }
}
