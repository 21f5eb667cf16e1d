//! Reading CBS packages out of their containers:
//! a CBS `.cab` (with the `.psf` beside it), a classic `.msu` (a CAB of CBS CABs), a
//! WIM-format `.msu`, and a folder of such files (a month's download).
//!
//! The file given is first copied into the library's incoming area while it is hashed, and
//! what is read is that copy: the bytes identified are the bytes stored. CABs inside an MSU
//! are landed there too (never in `$TMPDIR`), bounded by `import_max_expanded_gib`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::input::{extension_is, stem_lower, Source};
use super::mum::{self, Mum, MAX_MUM_BYTES, MAX_PROPERTIES_BYTES};
use super::{
    architecture_of, classification_of, editions_of, kb_of, CbsKind, CbsPackage, ContainerForm,
    OriginalFile, PsfPayload,
};
use crate::library::manifest::package_path;
use crate::library::{Bounded, LibraryError};

pub(super) const WIM_MAGIC: &[u8; 8] = b"MSWIM\0\0\0";
pub(super) const CAB_MAGIC: &[u8; 4] = b"MSCF";
const EXPRESS_INDEX: &str = "express.psf.cix.xml";

pub(super) fn invalid(file: &Path, reason: impl Into<String>) -> LibraryError {
    LibraryError::InvalidWindowsPackage {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError + '_ {
    move |source| LibraryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn magic(path: &Path) -> std::io::Result<[u8; 8]> {
    let mut head = [0u8; 8];
    let mut f = File::open(path)?;
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(head)
}

/// An entry of a CAB as its file table names it.
pub(super) struct CabEntry {
    pub(super) name: String,
    pub(super) size: u64,
}

pub(super) fn cab_entries(path: &Path) -> Result<Vec<CabEntry>, String> {
    crate::library::package::refuse_cabinet_sets(path)?;
    let file = File::open(path).map_err(|e| e.to_string())?;
    let cabinet = cab::Cabinet::new(BufReader::new(file))
        .map_err(|e| format!("not a readable CAB file ({e})"))?;
    Ok(cabinet
        .folder_entries()
        .flat_map(|f| f.file_entries())
        .map(|e| CabEntry {
            name: e.name().to_string(),
            size: u64::from(e.uncompressed_size()),
        })
        .collect())
}

/// Entry names checked as package paths: none may climb out or be absolute.
fn checked_names(entries: &[CabEntry]) -> Result<Vec<String>, String> {
    entries
        .iter()
        .map(|e| package_path(&e.name).map_err(|why| format!("entry {:?}: {why}", e.name)))
        .collect()
}

/// A CBS package read from a file given to `update import`, with the originals landed.
pub struct ReadSource {
    pub origin: PathBuf,
    pub packages: Vec<CbsPackage>,
    /// The original files with where they landed in the incoming area.
    pub originals: Vec<(OriginalFile, PathBuf)>,
}

/// What one CBS CAB (or WIM) inside a container says.
struct Facts {
    mum: Mum,
    entries: u64,
    express: bool,
}

/// Reads a Windows update file: lands it (and its `.psf`) in `incoming`, then identifies
/// what it holds. Nothing is stored.
pub fn read(
    max_expanded: u64,
    source: &Source,
    incoming: &Path,
) -> Result<ReadSource, LibraryError> {
    std::fs::create_dir_all(incoming).map_err(io(incoming))?;
    let file = &source.file;
    let (original, landed) = land_original(file, incoming, "original", "cab")?;
    let mut originals = vec![(original.clone(), landed.clone())];
    let psf = match &source.psf {
        Some(p) => {
            let (f, at) = land_original(p, incoming, "psf", "psf")?;
            originals.push((f.clone(), at));
            Some(f)
        }
        None => None,
    };
    let head = magic(&landed).map_err(io(file))?;
    let mut packages = if &head == WIM_MAGIC {
        originals[0].0.role = "msu".into();
        read_wim_msu(max_expanded, file, &landed, incoming)?
    } else if &head[..4] == CAB_MAGIC {
        let entries = cab_entries(&landed).map_err(|e| invalid(file, e))?;
        let names = checked_names(&entries).map_err(|e| invalid(file, e))?;
        if names.iter().any(|n| n.eq_ignore_ascii_case("update.mum")) {
            let facts = cbs_cab(max_expanded, file, &landed, &entries, &names)?;
            vec![Built {
                facts,
                member: None,
                ssu_member: false,
                properties: BTreeMap::new(),
                psf: psf.as_ref().map(|f| PsfPayload {
                    name: f.name.clone(),
                    size: f.size,
                    location: "beside".into(),
                }),
            }]
        } else if names.iter().any(|n| n.eq_ignore_ascii_case("wsusscan.cab")) {
            originals[0].0.role = "msu".into();
            read_classic_msu(max_expanded, file, &landed, incoming, &entries, &names)?
        } else {
            return Err(invalid(
                file,
                "the CAB has neither update.toml (an ois package), update.mum (a CBS package) nor WSUSSCAN.cab (an .msu) at its root",
            ));
        }
    } else {
        return Err(invalid(file, "it is neither a CAB nor a WIM file"));
    };
    if let Some(p) = packages.iter().find(|b| b.facts.express && b.psf.is_none()) {
        return Err(invalid(
            file,
            format!(
                "{} is an express package ({EXPRESS_INDEX}) but its payload (.psf of the same base name) is not with it: put the .psf beside the .cab and import again",
                p.member.as_deref().unwrap_or("the CAB")
            ),
        ));
    }
    let form = match originals[0].0.role.as_str() {
        "msu" if &head == WIM_MAGIC => ContainerForm::WimMsu,
        "msu" => ContainerForm::Msu,
        _ => ContainerForm::Cab,
    };
    let files: Vec<OriginalFile> = originals.iter().map(|(f, _)| f.clone()).collect();
    let mut built: Vec<CbsPackage> = packages
        .drain(..)
        .map(|b| b.package(file, form, &original.sha256, &files))
        .collect();
    let identities: Vec<String> = built.iter().map(|p| p.identity.clone()).collect();
    for p in &mut built {
        p.bundled_with = identities
            .iter()
            .filter(|i| **i != p.identity)
            .cloned()
            .collect();
    }
    Ok(ReadSource {
        origin: file.clone(),
        packages: built,
        originals,
    })
}

/// Copies a file given into the incoming area, hashing it on the way.
fn land_original(
    file: &Path,
    incoming: &Path,
    as_name: &str,
    role: &str,
) -> Result<(OriginalFile, PathBuf), LibraryError> {
    let landed = incoming.join(as_name);
    let mut from = File::open(file).map_err(io(file))?;
    let mut to = File::create(&landed).map_err(io(&landed))?;
    let (sha256, size) = crate::fsutil::copy_hashing(&mut from, &mut to).map_err(io(&landed))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((
        OriginalFile {
            role: role.into(),
            name,
            sha256,
            size,
        },
        landed,
    ))
}

/// A package read, before it knows its container.
struct Built {
    facts: Facts,
    member: Option<String>,
    ssu_member: bool,
    properties: BTreeMap<String, String>,
    psf: Option<PsfPayload>,
}

impl Built {
    fn package(
        self,
        file: &Path,
        form: ContainerForm,
        sha256: &str,
        files: &[OriginalFile],
    ) -> CbsPackage {
        let mum = self.facts.mum;
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kb = mum
            .identifier
            .as_deref()
            .and_then(kb_of)
            .or_else(|| {
                self.properties
                    .get("KB Article Number")
                    .and_then(|k| kb_of(k))
            })
            .or_else(|| self.member.as_deref().and_then(kb_of))
            .or_else(|| kb_of(&file_name));
        let classification = self
            .properties
            .get("Package Type")
            .or(mum.release_type.as_ref())
            .map(|t| classification_of(t));
        CbsPackage {
            kb,
            identity: mum.identity.to_string(),
            kind: CbsKind::of(&mum.identity.name, self.ssu_member),
            architecture: architecture_of(&mum.identity.processor_architecture),
            identity_parts: mum.identity,
            release_type: mum.release_type,
            classification,
            restart: mum.restart,
            editions: editions_of(&mum.parents),
            parents: mum.parents,
            custom_information: mum.custom_information,
            express: self.facts.express,
            psf: self.psf,
            container: form,
            source: file.display().to_string(),
            source_sha256: sha256.to_string(),
            member: self.member,
            bundled_with: Vec::new(),
            properties: self.properties,
            entries: self.facts.entries,
            files: files.to_vec(),
            imported_at: String::new(),
        }
    }
}

/// Reads a CBS CAB on disk: its `update.mum` (bounded) and what it holds. `file` (the file
/// given to the import) is what errors name; callers add the member's name.
fn cbs_cab(
    max_expanded: u64,
    file: &Path,
    cab: &Path,
    entries: &[CabEntry],
    names: &[String],
) -> Result<Facts, LibraryError> {
    let declared = entries
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.size));
    if declared > max_expanded {
        return Err(LibraryError::TooLarge {
            origin: file.to_path_buf(),
            detail: format!("declares {declared} bytes in its CAB"),
            limit: max_expanded,
        });
    }
    let at = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case("update.mum"))
        .ok_or_else(|| invalid(file, "it has no update.mum at its root"))?;
    let entry = &entries[at];
    if entry.size > MAX_MUM_BYTES {
        return Err(invalid(
            file,
            format!(
                "its update.mum is {} bytes, over the {} MiB an update.mum may be",
                entry.size,
                MAX_MUM_BYTES >> 20
            ),
        ));
    }
    let opened = File::open(cab).map_err(io(cab))?;
    let mut cabinet = cab::Cabinet::new(BufReader::new(opened))
        .map_err(|e| invalid(file, format!("not a readable CAB file ({e})")))?;
    let mut bytes = Vec::new();
    cabinet
        .read_file(&entry.name)
        .and_then(|r| r.take(MAX_MUM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| invalid(file, format!("its update.mum cannot be read ({e})")))?;
    if bytes.len() as u64 > MAX_MUM_BYTES {
        return Err(invalid(
            file,
            format!(
                "its update.mum is larger than the {} MiB an update.mum may be",
                MAX_MUM_BYTES >> 20
            ),
        ));
    }
    let mum = mum::decode(&bytes)
        .and_then(|text| mum::parse(&text))
        .map_err(|why| invalid(file, format!("its update.mum: {why}")))?;
    Ok(Facts {
        mum,
        entries: entries.len() as u64,
        express: names.iter().any(|n| n.eq_ignore_ascii_case(EXPRESS_INDEX)),
    })
}

/// CABs and WIMs of an MSU that are not CBS packages (scan catalog, deployment metadata).
fn is_metadata(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "wsusscan.cab"
        || lower.starts_with("desktopdeployment")
        || lower.contains("aggregatedmetadata")
}

/// `SSU-<version>-<arch>.cab` in an MSU is the servicing stack.
fn is_ssu(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("ssu-")
}

fn base_lower(name: &str) -> String {
    stem_lower(Path::new(name))
}

/// An MSU's members that are CBS packages, and its `.psf` members by base name.
fn members<'a>(names: impl Iterator<Item = (&'a str, u64)>, wim: bool) -> Members<'a> {
    let mut m = Members {
        packages: Vec::new(),
        psf: BTreeMap::new(),
        properties: Vec::new(),
    };
    for (name, size) in names {
        if name.contains('/') {
            continue;
        }
        let path = Path::new(name);
        if (extension_is(path, "cab") || (wim && extension_is(path, "wim"))) && !is_metadata(name) {
            m.packages.push((name, size));
        } else if extension_is(path, "psf") {
            m.psf.insert(base_lower(name), (name, size));
        } else if name.to_ascii_lowercase().ends_with("-pkgproperties.txt") {
            m.properties.push((name, size));
        }
    }
    m
}

struct Members<'a> {
    packages: Vec<(&'a str, u64)>,
    psf: BTreeMap<String, (&'a str, u64)>,
    properties: Vec<(&'a str, u64)>,
}

impl Members<'_> {
    fn bound(&self, file: &Path, max_expanded: u64) -> Result<(), LibraryError> {
        let declared = self
            .packages
            .iter()
            .chain(&self.properties)
            .fold(0u64, |sum, (_, s)| sum.saturating_add(*s));
        if declared > max_expanded {
            return Err(LibraryError::TooLarge {
                origin: file.to_path_buf(),
                detail: format!("declares {declared} bytes in the packages it holds"),
                limit: max_expanded,
            });
        }
        if let Some((name, size)) = self
            .properties
            .iter()
            .find(|(_, s)| *s > MAX_PROPERTIES_BYTES)
        {
            return Err(invalid(
                file,
                format!("{name} is {size} bytes, over the 1 MiB it may be"),
            ));
        }
        Ok(())
    }

    fn psf_of(&self, member: &str) -> Option<PsfPayload> {
        self.psf
            .get(&base_lower(member))
            .map(|(name, size)| PsfPayload {
                name: name.to_string(),
                size: *size,
                location: "in-msu".into(),
            })
    }
}

/// Copies a member out of its container into `dest`, counting it against what the import may
/// still expand to.
fn land_member(
    file: &Path,
    name: &str,
    dest: &Path,
    reader: &mut dyn Read,
    left: &std::cell::Cell<u64>,
) -> Result<(), LibraryError> {
    let exceeded = std::cell::Cell::new(false);
    let mut out = File::create(dest).map_err(io(dest))?;
    let copied = std::io::copy(
        &mut Bounded {
            inner: reader,
            left,
            exceeded: &exceeded,
        },
        &mut out,
    );
    match copied {
        Ok(_) => Ok(()),
        Err(_) if exceeded.get() => Err(LibraryError::TooLarge {
            origin: file.to_path_buf(),
            detail: format!("expanded past the bound while {name} was read"),
            limit: left.get(),
        }),
        Err(e) => Err(invalid(file, format!("{name} cannot be read ({e})"))),
    }
}

fn read_classic_msu(
    max_expanded: u64,
    file: &Path,
    landed: &Path,
    incoming: &Path,
    entries: &[CabEntry],
    names: &[String],
) -> Result<Vec<Built>, LibraryError> {
    let listed = members(
        names
            .iter()
            .map(String::as_str)
            .zip(entries.iter().map(|e| e.size)),
        false,
    );
    if listed.packages.is_empty() {
        return Err(invalid(
            file,
            "the MSU holds no CBS .cab besides WSUSSCAN.cab",
        ));
    }
    listed.bound(file, max_expanded)?;
    let inner = incoming.join("inner");
    std::fs::create_dir_all(&inner).map_err(io(&inner))?;
    // CAB entry name (as the table gives it) -> normalised member name.
    let wanted: BTreeMap<&str, &str> = entries
        .iter()
        .zip(names)
        .filter(|(_, n)| {
            listed.packages.iter().any(|(p, _)| p == n)
                || listed.properties.iter().any(|(p, _)| p == n)
        })
        .map(|(e, n)| (e.name.as_str(), n.as_str()))
        .collect();
    let left = std::cell::Cell::new(max_expanded);
    let mut properties: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut failure = None;
    crate::library::cabfolder::for_each(landed, &mut |m, r| {
        let Some(name) = wanted.get(m.name.as_str()) else {
            return Ok(());
        };
        let result = if name.to_ascii_lowercase().ends_with("-pkgproperties.txt") {
            let mut bytes = Vec::new();
            r.take(MAX_PROPERTIES_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| invalid(file, format!("{name} cannot be read ({e})")))
                .and_then(|_| {
                    mum::properties(&bytes).map_err(|why| invalid(file, format!("{name}: {why}")))
                })
                .map(|p| {
                    let base = name[..name.len() - "-pkgproperties.txt".len()].to_lowercase();
                    properties.insert(base, p);
                })
        } else {
            land_member(file, name, &inner.join(name), r, &left)
        };
        result.map_err(|e| {
            let message = e.to_string();
            failure = Some(e);
            message
        })
    })
    .map_err(|e| {
        failure
            .take()
            .unwrap_or_else(|| invalid(file, format!("reading the MSU: {e}")))
    })?;
    let mut out = Vec::new();
    for (name, _) in &listed.packages {
        let at = inner.join(name);
        let within = |e: LibraryError| match e {
            LibraryError::InvalidWindowsPackage { reason, .. } => {
                invalid(file, format!("{name}: {reason}"))
            }
            other => other,
        };
        let entries = cab_entries(&at).map_err(|e| invalid(file, format!("{name}: {e}")))?;
        let names = checked_names(&entries).map_err(|e| invalid(file, format!("{name}: {e}")))?;
        let facts = cbs_cab(max_expanded, file, &at, &entries, &names).map_err(within)?;
        out.push(Built {
            facts,
            member: Some(name.to_string()),
            ssu_member: is_ssu(name),
            properties: properties.remove(&base_lower(name)).unwrap_or_default(),
            psf: listed.psf_of(name),
        });
    }
    Ok(out)
}

fn read_wim_msu(
    max_expanded: u64,
    file: &Path,
    landed: &Path,
    incoming: &Path,
) -> Result<Vec<Built>, LibraryError> {
    use crate::wim::Wim;
    let wim_error = |e: crate::wim::WimError| invalid(file, format!("not a readable WIM ({e})"));
    let wim = Wim::open(landed, false).map_err(wim_error)?;
    if wim.header().image_count < 1 {
        return Err(invalid(file, "the WIM holds no image"));
    }
    let root = wim.list(1, "/", false).map_err(wim_error)?;
    let mut names = Vec::with_capacity(root.len());
    for e in &root {
        names.push(
            package_path(&e.path)
                .map_err(|why| invalid(file, format!("entry {:?}: {why}", e.path)))?,
        );
    }
    let listed = members(
        names
            .iter()
            .zip(&root)
            .filter(|(_, e)| !e.is_dir)
            .map(|(n, e)| (n.as_str(), e.size)),
        true,
    );
    if listed.packages.is_empty() {
        return Err(invalid(
            file,
            "the WIM-format MSU holds no CBS .cab or .wim package",
        ));
    }
    listed.bound(file, max_expanded)?;
    let inner = incoming.join("inner");
    std::fs::create_dir_all(&inner).map_err(io(&inner))?;
    let mut reader = wim.files().map_err(wim_error)?;
    let left = std::cell::Cell::new(max_expanded);
    let mut out = Vec::new();
    for (name, _) in &listed.packages {
        let entry = root
            .iter()
            .zip(&names)
            .find(|(_, n)| n == name)
            .map(|(e, _)| e)
            .ok_or_else(|| invalid(file, format!("{name} vanished from the WIM")))?;
        let at = inner.join(name);
        let mut out_file = File::create(&at).map_err(io(&at))?;
        let exceeded = std::cell::Cell::new(false);
        let streamed = reader.stream(entry, &mut |bytes| {
            let mut chunk = Bounded {
                inner: &mut std::io::Cursor::new(bytes),
                left: &left,
                exceeded: &exceeded,
            };
            std::io::copy(&mut chunk, &mut out_file)
                .map(|_| ())
                .map_err(|e| crate::wim::WimError::io(&at, "landing a package of", e))
        });
        match streamed {
            Ok(()) => {}
            Err(_) if exceeded.get() => {
                return Err(LibraryError::TooLarge {
                    origin: file.to_path_buf(),
                    detail: format!("expanded past the bound while {name} was read"),
                    limit: max_expanded,
                })
            }
            Err(e) => return Err(invalid(file, format!("{name} cannot be read ({e})"))),
        }
        drop(out_file);
        let within = |e: LibraryError| match e {
            LibraryError::InvalidWindowsPackage { reason, .. } => {
                invalid(file, format!("{name}: {reason}"))
            }
            other => other,
        };
        let facts = if extension_is(Path::new(name), "wim") {
            inner_wim(max_expanded, file, &at).map_err(within)?
        } else {
            let entries = cab_entries(&at).map_err(|e| invalid(file, format!("{name}: {e}")))?;
            let names =
                checked_names(&entries).map_err(|e| invalid(file, format!("{name}: {e}")))?;
            cbs_cab(max_expanded, file, &at, &entries, &names).map_err(within)?
        };
        out.push(Built {
            facts,
            member: Some(name.to_string()),
            ssu_member: is_ssu(name),
            properties: BTreeMap::new(),
            psf: listed.psf_of(name),
        });
    }
    Ok(out)
}

/// A CBS package kept as a WIM inside a WIM-format MSU: `update.mum` at the root of image 1.
fn inner_wim(max_expanded: u64, file: &Path, at: &Path) -> Result<Facts, LibraryError> {
    use crate::wim::Wim;
    let wim_error = |e: crate::wim::WimError| invalid(file, format!("not a readable WIM ({e})"));
    let wim = Wim::open(at, false).map_err(wim_error)?;
    if wim.header().image_count < 1 {
        return Err(invalid(file, "the WIM holds no image"));
    }
    let all = wim.list(1, "/", true).map_err(wim_error)?;
    let declared = all
        .iter()
        .filter(|e| !e.is_dir)
        .fold(0u64, |sum, e| sum.saturating_add(e.size));
    if declared > max_expanded {
        return Err(LibraryError::TooLarge {
            origin: file.to_path_buf(),
            detail: format!("declares {declared} bytes in its package WIM"),
            limit: max_expanded,
        });
    }
    let mum_entry = all
        .iter()
        .find(|e| !e.is_dir && e.path.eq_ignore_ascii_case("update.mum"))
        .ok_or_else(|| invalid(file, "it has no update.mum at its root"))?;
    if mum_entry.size > MAX_MUM_BYTES {
        return Err(invalid(
            file,
            format!(
                "its update.mum is {} bytes, over the {} MiB an update.mum may be",
                mum_entry.size,
                MAX_MUM_BYTES >> 20
            ),
        ));
    }
    let bytes = wim
        .files()
        .and_then(|mut r| r.read(mum_entry, MAX_MUM_BYTES))
        .map_err(|e| invalid(file, format!("its update.mum cannot be read ({e})")))?;
    let mum = mum::decode(&bytes)
        .and_then(|text| mum::parse(&text))
        .map_err(|why| invalid(file, format!("its update.mum: {why}")))?;
    Ok(Facts {
        mum,
        entries: all.iter().filter(|e| !e.is_dir).count() as u64,
        express: all
            .iter()
            .any(|e| e.path.eq_ignore_ascii_case(EXPRESS_INDEX)),
    })
}
