//! A seeded generator of Windows-like WIM images and matching update packages, for benchmarks
//! and tests. The same seed and size always give the same bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::content::{self, Kind, Rng};
use super::BenchError;
use crate::library::Architecture;
use crate::sample::{build_wim, write_cab, write_package, IndexSpec};
use crate::wim::{Compression, Wim};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub seed: u64,
    /// Bytes of file data in one index (hard links counted once).
    pub size: u64,
    /// Editions in the WIM; they share nearly all their content.
    pub indexes: u32,
    pub compression: Compression,
}

/// What was generated, as recorded in `generate.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Generated {
    pub wim: PathBuf,
    /// In the order they are meant to be applied.
    pub packages: Vec<PathBuf>,
    pub indexes: u32,
    pub files: usize,
    pub hard_links: usize,
    pub expanded_bytes: u64,
    pub largest_file: u64,
    pub wim_bytes: u64,
    /// Stored over original bytes of the WIM's file data (0.35-0.50 for a real install.wim).
    pub compression_ratio: f64,
    pub cu_files: usize,
    pub cu_bytes: u64,
}

const EDITIONS: &[(&str, &str)] = &[
    ("Windows 11 Pro", "Professional"),
    ("Windows 11 Enterprise", "Enterprise"),
    ("Windows 11 Education", "Education"),
    ("Windows 11 Pro for Workstations", "ProfessionalWorkstation"),
    ("Windows 11 Pro Education", "ProfessionalEducation"),
    ("Windows 11 Home", "Core"),
    // A full retail install.wim holds eleven editions: the N and single-language ones too.
    ("Windows 11 Home N", "CoreN"),
    ("Windows 11 Home Single Language", "CoreSingleLanguage"),
    ("Windows 11 Education N", "EducationN"),
    ("Windows 11 Pro N", "ProfessionalN"),
    ("Windows 11 Pro Education N", "ProfessionalEducationN"),
    (
        "Windows 11 Pro N for Workstations",
        "ProfessionalWorkstationN",
    ),
];
const BUILD: u32 = 22631;
/// The cumulative update already in the image, seen through its `.mum` by detection.
pub const BASE_KB: &str = "KB9000000";
pub const SMALL_KB: &str = "KB9000001";
pub const CU_KB: &str = "KB9000002";
pub const CLEANUP_KB: &str = "KB9000003";

/// One file of the generated tree.
#[derive(Debug, Clone)]
struct FileSpec {
    path: String,
    kind: Kind,
    size: u64,
    seed: u64,
    /// Another path holding the same file (a hard link, as System32 has into WinSxS).
    link: Option<String>,
}

const SYLLABLES: &[&str] = &[
    "net", "win", "ms", "core", "shell", "dx", "crypt", "user", "gdi", "ole", "rpc", "ntd", "sec",
    "auth", "wbem", "media", "print", "audio", "bth", "usb", "hid", "wlan", "dns", "tcp",
];

fn stem(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for _ in 0..2 + rng.below(2) {
        s.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
    }
    format!("{s}{n}")
}

/// Lays out the tree: mostly small files, a long tail, a few tens-of-MB ones, and WinSxS
/// components hard-linked into System32.
fn layout(opts: &GenerateOptions) -> Vec<FileSpec> {
    let mut rng = Rng::new(opts.seed);
    let mut files = Vec::new();
    let mut budget = opts.size;
    let big = (opts.size / 25).clamp(64 << 10, 40 << 20);
    let big_count = if opts.size >= 256 << 20 { 4 } else { 1 };
    for i in 0..big_count {
        let (path, kind) = match i {
            0 => ("Windows/System32/MRT.exe".to_string(), Kind::Binary),
            1 => (
                "Program Files/Windows Defender/mpengine.dll".into(),
                Kind::Binary,
            ),
            // Packed data, but not a WIM: a file named Winre.wim would be taken for a
            // (damaged) nested recovery image at import.
            2 => (
                "Windows/SystemApps/Microsoft.Windows.Search.appx".into(),
                Kind::Packed,
            ),
            _ => (
                format!("Program Files/WindowsApps/Store{i}.appx"),
                Kind::Packed,
            ),
        };
        let size = big - rng.below(big / 4);
        budget = budget.saturating_sub(size);
        files.push(FileSpec {
            path,
            kind,
            size,
            seed: rng.next_u64(),
            link: None,
        });
    }
    let mut n = 0usize;
    while budget > 0 {
        n += 1;
        let r = rng.below(100);
        let size = match r {
            0..=74 => rng.log_uniform(200, 16 << 10),
            75..=97 => rng.log_uniform(16 << 10, 256 << 10),
            _ => rng.log_uniform(256 << 10, 4 << 20),
        }
        .min(budget)
        .max(1);
        budget -= size;
        let name = stem(&mut rng, n);
        let seed = rng.next_u64();
        let (path, kind, link) = match rng.below(100) {
            0..=29 => {
                let ver = format!("10.0.{BUILD}.{}", 1 + rng.below(3000));
                let dir = format!(
                    "Windows/WinSxS/amd64_microsoft-windows-{name}_31bf3856ad364e35_{ver}_none_{:016x}",
                    rng.next_u64()
                );
                let file = format!("{name}.dll");
                // Most components are projected into System32 by hard link.
                let link = (rng.below(10) < 7).then(|| format!("Windows/System32/{file}"));
                (format!("{dir}/{file}"), Kind::Binary, link)
            }
            30..=44 => (
                format!("Windows/WinSxS/Manifests/amd64_microsoft-windows-{name}_31bf3856ad364e35_10.0.{BUILD}.1_none_{:016x}.manifest", rng.next_u64()),
                Kind::Text,
                None,
            ),
            45..=64 => (format!("Windows/System32/{name}.dll"), Kind::Binary, None),
            65..=69 => (format!("Windows/System32/{name}.exe"), Kind::Binary, None),
            70..=74 => (format!("Windows/System32/drivers/{name}.sys"), Kind::Binary, None),
            75..=79 => (format!("Windows/System32/en-US/{name}.dll.mui"), Kind::Text, None),
            80..=83 => (format!("Windows/INF/{name}.inf"), Kind::Text, None),
            84..=86 => (format!("Windows/Fonts/{name}.ttf"), Kind::Packed, None),
            87..=89 => (format!("Windows/SysWOW64/{name}.dll"), Kind::Binary, None),
            _ => (
                format!("Program Files/{}/{name}.dll", ["Common Files/microsoft shared", "Windows Defender", "Internet Explorer", "Windows Media Player", "WindowsPowerShell/Modules"][rng.below(5) as usize]),
                Kind::Binary,
                None,
            ),
        };
        files.push(FileSpec {
            path,
            kind,
            size,
            seed,
            link,
        });
    }
    files.push(FileSpec {
        path: format!("Windows/servicing/Packages/Package_for_RollupFix~31bf3856ad364e35~amd64~~{BUILD}.2861.1.6.mum"),
        kind: Kind::Text,
        size: 0,
        seed: 0,
        link: None,
    });
    files
}

fn mum(kb: &str) -> Vec<u8> {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<assembly xmlns=\"urn:schemas-microsoft-com:asm.v3\" manifestVersion=\"1.0\"><package identifier=\"{kb}\" releaseType=\"Update\"/></assembly>\r\n").into_bytes()
}

fn content_of(f: &FileSpec) -> Vec<u8> {
    if f.path.ends_with(".mum") {
        return mum(BASE_KB);
    }
    content::bytes(f.kind, f.seed, f.size as usize)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |e| BenchError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn write_file(root: &Path, rel: &str, data: &[u8]) -> Result<(), BenchError> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(&path, data).map_err(io(&path))
}

fn write_tree(root: &Path, files: &[FileSpec]) -> Result<usize, BenchError> {
    let mut links = 0;
    for f in files {
        write_file(root, &f.path, &content_of(f))?;
        if let Some(link) = &f.link {
            let dest = root.join(link);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::hard_link(root.join(&f.path), &dest).map_err(io(&dest))?;
            links += 1;
        }
    }
    Ok(links)
}

/// Generates `install.wim`, the packages and `generate.json` in `out`.
pub fn generate(out: &Path, opts: &GenerateOptions) -> Result<Generated, BenchError> {
    if opts.indexes == 0 || opts.indexes as usize > EDITIONS.len() {
        return Err(BenchError::Invalid(format!(
            "--indexes must be 1 to {}",
            EDITIONS.len()
        )));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let files = layout(opts);
    let tree = out.join(".tree");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(io(&tree))?;
    }
    tracing::info!(
        "writing a {} MiB tree of {} files",
        opts.size >> 20,
        files.len()
    );
    let hard_links = write_tree(&tree, &files)?;
    let wim = out.join("install.wim");
    capture(&tree, &wim, opts)?;
    std::fs::remove_dir_all(&tree).map_err(io(&tree))?;
    let pkg_dir = out.join("packages");
    if pkg_dir.exists() {
        std::fs::remove_dir_all(&pkg_dir).map_err(io(&pkg_dir))?;
    }
    let (packages, cu_files, cu_bytes) = packages(&pkg_dir, &files, opts.seed)?;
    let opened = Wim::open(&wim, false).map_err(|e| BenchError::Wim(e.to_string()))?;
    let (stored, original) = opened
        .blob_totals()
        .map_err(|e| BenchError::Wim(e.to_string()))?;
    let generated = Generated {
        wim_bytes: std::fs::metadata(&wim).map_err(io(&wim))?.len(),
        wim,
        packages,
        indexes: opts.indexes,
        files: files.len(),
        hard_links,
        expanded_bytes: files.iter().map(|f| f.size).sum(),
        largest_file: files.iter().map(|f| f.size).max().unwrap_or(0),
        compression_ratio: stored as f64 / original.max(1) as f64,
        cu_files,
        cu_bytes,
    };
    let summary = out.join("generate.json");
    let json =
        serde_json::to_vec_pretty(&generated).map_err(|e| BenchError::Invalid(e.to_string()))?;
    std::fs::write(&summary, json).map_err(io(&summary))?;
    Ok(generated)
}

/// Captures the tree once per edition; each edition adds a few files of its own, as real
/// editions differ by a handful of licensing and feature files.
fn capture(tree: &Path, wim: &Path, opts: &GenerateOptions) -> Result<(), BenchError> {
    let mut trees = Vec::new();
    let editions_root = tree.with_file_name(".editions");
    for (i, (_, edition)) in EDITIONS.iter().take(opts.indexes as usize).enumerate() {
        // Editions are overlays captured with the shared tree: a copy would double the I/O,
        // so each edition gets a tree of hard links plus its own files.
        let dir = editions_root.join(edition);
        link_tree(tree, &dir)?;
        let own = [
            (
                format!("Windows/System32/spp/tokens/skus/{edition}/{edition}-ul.xrm-ms"),
                Kind::Text,
                6 << 10,
            ),
            (
                format!("Windows/System32/{edition}Features.dll"),
                Kind::Binary,
                48 << 10,
            ),
        ];
        for (rel, kind, size) in own {
            write_file(
                &dir,
                &rel,
                &content::bytes(kind, opts.seed ^ (i as u64 + 77), size),
            )?;
        }
        trees.push(dir);
    }
    let specs: Vec<IndexSpec> = EDITIONS
        .iter()
        .zip(&trees)
        .map(|((name, edition), dir)| IndexSpec {
            name,
            edition,
            architecture: Architecture::X64,
            build: BUILD,
            tree: dir,
        })
        .collect();
    let built =
        build_wim(wim, opts.compression, &specs).map_err(|e| BenchError::Wim(e.to_string()));
    std::fs::remove_dir_all(&editions_root).map_err(io(&editions_root))?;
    built
}

/// Mirrors `src` into `dest` with hard links (keeping the links between files of `src`).
fn link_tree(src: &Path, dest: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(io(src))?
        .collect::<Result<_, _>>()
        .map_err(io(src))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dest.join(e.file_name());
        if e.file_type().map_err(io(&from))?.is_dir() {
            link_tree(&from, &to)?;
        } else {
            std::fs::hard_link(&from, &to).map_err(io(&to))?;
        }
    }
    Ok(())
}

/// The three packages: a small servicing-stack-like one, a cumulative update replacing a few
/// percent of the files (as a CAB, as Windows ships them), and one that deletes and renames.
fn packages(
    dir: &Path,
    files: &[FileSpec],
    seed: u64,
) -> Result<(Vec<PathBuf>, usize, u64), BenchError> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    // Disjoint picks so the packages commute, whatever order a tool applies them in.
    let candidates: Vec<&FileSpec> = files.iter().filter(|f| !f.path.ends_with(".mum")).collect();
    let mut cu: Vec<&FileSpec> = Vec::new();
    let mut cleanup: Vec<&FileSpec> = Vec::new();
    for (i, f) in candidates.iter().enumerate() {
        match i % 16 {
            0 if f.size < (8 << 20) => cu.push(f),
            7 if cleanup.len() < 40 => cleanup.push(f),
            _ => {}
        }
    }
    let small = write_package(
        &dir.join(SMALL_KB),
        &format!(
            "id = \"{SMALL_KB}\"\ntitle = \"2026-11 Servicing Stack Update for Windows 11 (x64)\"\nclassification = \"Critical Updates\"\narchitecture = \"x64\"\n[applies_to]\nmin_build = {BUILD}\nmax_build = {BUILD}\n[[change]]\nadd = \"payload/Stack\"\nat = \"Windows/servicing/Stack\"\n"
        ),
        &[
            ("payload/Stack/CbsCore.dll", content::bytes(Kind::Binary, rng.next_u64(), 400 << 10)),
            ("payload/Stack/TiWorker.exe", content::bytes(Kind::Binary, rng.next_u64(), 200 << 10)),
            ("payload/Stack/servicing.manifest", content::bytes(Kind::Text, rng.next_u64(), 12 << 10)),
        ],
    )
    .map_err(io(dir))?;

    // The CU ships new versions of its files, and their new WinSxS component directories.
    let mut cu_payload: Vec<(String, Vec<u8>)> = Vec::new();
    let mut roots = BTreeSet::new();
    for f in &cu {
        let data = content::bytes(f.kind, rng.next_u64(), f.size as usize);
        for p in std::iter::once(&f.path).chain(f.link.as_ref()) {
            roots.insert(p.split('/').next().unwrap_or("Windows").to_string());
            cu_payload.push((format!("payload/{p}"), data.clone()));
        }
    }
    cu_payload.push((
        format!("payload/Windows/servicing/Packages/Package_for_RollupFix~31bf3856ad364e35~amd64~~{BUILD}.2900.1.6.mum"),
        mum(CU_KB),
    ));
    roots.insert("Windows".into());
    let mut manifest = format!(
        "id = \"{CU_KB}\"\ntitle = \"2026-11 Cumulative Update for Windows 11 Version 23H2 (x64)\"\nclassification = \"Security Updates\"\narchitecture = \"x64\"\nsupersedes = [\"{BASE_KB}\"]\n[applies_to]\nmin_build = {BUILD}\nmax_build = {BUILD}\n"
    );
    for r in &roots {
        manifest.push_str(&format!(
            "[[change]]\nadd = \"payload/{r}\"\nat = \"{r}\"\n"
        ));
    }
    let cu_bytes = cu_payload.iter().map(|(_, d)| d.len() as u64).sum();
    let cu_files = cu_payload.len();
    let mut cab_files: Vec<(&str, Vec<u8>)> =
        vec![(crate::library::MANIFEST_NAME, manifest.into_bytes())];
    cab_files.extend(cu_payload.iter().map(|(p, d)| (p.as_str(), d.clone())));
    let cab = dir.join(format!("{CU_KB}.cab"));
    write_cab(&cab, &cab_files).map_err(io(&cab))?;
    drop(cab_files);

    let mut manifest = format!(
        "id = \"{CLEANUP_KB}\"\ntitle = \"2026-11 Component Cleanup for Windows 11 (x64)\"\nclassification = \"Updates\"\narchitecture = \"x64\"\n"
    );
    let mut targets = BTreeSet::new();
    for (i, f) in cleanup.iter().enumerate() {
        if i % 2 == 0 {
            // Whole WinSxS components go, as component cleanup removes superseded versions.
            let path = match f.path.rsplit_once('/') {
                Some((d, _)) if d.starts_with("Windows/WinSxS/amd64_") => d.to_string(),
                _ => f.path.clone(),
            };
            manifest.push_str(&format!("[[change]]\ndelete = \"{path}\"\n"));
        } else {
            let to = format!("{}.old", f.path);
            if targets.insert(to.to_lowercase()) {
                manifest.push_str(&format!(
                    "[[change]]\nrename = \"{}\"\nto = \"{to}\"\n",
                    f.path
                ));
            }
        }
    }
    manifest.push_str("[[change]]\ndelete = \"Windows/INF\"\n");
    let cleanup_pkg = write_package(&dir.join(CLEANUP_KB), &manifest, &[]).map_err(io(dir))?;
    Ok((vec![small, cab, cleanup_pkg], cu_files, cu_bytes))
}
