//! Criterion micro-benchmarks of ois's own hot paths: manifest parsing and validation,
//! planning thousands of updates over many indexes, and library import hashing.

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use ois::image::{IndexDetail, IndexInfo, InstalledPackage, InstalledUpdate};
use ois::library::cbs::{CbsIdentity, CbsPackage, ParentRequirement};
use ois::library::{manifest, AppliesTo, Architecture, Change, ContentLibrary, Manifest, Update};
use ois::servicing::plan::{plan, Catalog, KindFilter, PlanError, Selection};
use ois::site::{ServicingDrive, Site};

/// A cumulative-update-like manifest with `n` changes.
fn cu_manifest(n: usize) -> String {
    let mut s = String::from(
        "id = \"KB9000002\"\ntitle = \"2026-11 Cumulative Update\"\narchitecture = \"x64\"\nsupersedes = [\"KB9000000\"]\n[applies_to]\nmin_build = 22621\nmax_build = 22631\n",
    );
    for i in 0..n {
        let _ = write!(
            s,
            "[[change]]\nadd = \"payload/Windows/System32/file{i}.dll\"\nat = \"Windows\\\\System32\\\\file{i}.dll\"\n"
        );
    }
    s
}

fn manifests(c: &mut Criterion) {
    let text = cu_manifest(2000);
    let mut g = c.benchmark_group("manifest");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse and validate, 2000 changes", |b| {
        b.iter(|| manifest::parse(&text).map(|m| m.changes.len()))
    });
    g.finish();
}

fn update(i: usize) -> Update {
    Update {
        manifest: Manifest {
            id: format!("KB{:07}", 5_000_000 + i),
            title: format!("Update {i}"),
            classification: Some("Security Updates".into()),
            architecture: if i.is_multiple_of(3) {
                Architecture::X86
            } else {
                Architecture::X64
            },
            // Chains of supersedence, as monthly cumulative updates form.
            supersedes: if i.is_multiple_of(10) {
                Vec::new()
            } else {
                vec![format!("KB{:07}", 5_000_000 + i - 1)]
            },
            requires: Vec::new(),
            applies_to: AppliesTo {
                min_build: Some(22000 + (i % 7) as u32 * 100),
                max_build: None,
                editions: if i.is_multiple_of(4) {
                    vec!["Enterprise".into()]
                } else {
                    Vec::new()
                },
            },
            target: Default::default(),
            changes: vec![Change::Delete {
                path: format!("Windows/Temp/{i}.log"),
            }],
            registry: Vec::new(),
        },
        size_bytes: 1 << 20,
        imported_at: String::new(),
        source: String::new(),
        files: Vec::new(),
    }
}

fn index(i: u32) -> IndexDetail {
    IndexDetail {
        info: IndexInfo {
            index: i,
            name: format!("Index {i}"),
            architecture: Some(Architecture::X64),
            build: Some(22631),
            version: None,
            edition: Some(
                if i.is_multiple_of(2) {
                    "Enterprise"
                } else {
                    "Professional"
                }
                .into(),
            ),
            product_name: None,
            ubr: Some(4460),
            display_version: None,
            packages_from: None,
        },
        packages: Vec::new(),
        target: Default::default(),
        installed: (0..200)
            .map(|k| InstalledUpdate {
                id: format!("KB{:07}", 4_000_000 + k),
                source: "windows-package".into(),
                run_id: None,
                installed_at: String::new(),
            })
            .collect(),
    }
}

/// `--all-applicable` over every kind: the plan the monthly run makes.
fn plan_all(indexes: &[IndexDetail], catalog: Catalog) -> Result<usize, PlanError> {
    plan(indexes, catalog, &Selection::AllApplicable(KindFilter::All)).map(|p| p.order.len())
}

fn planning(c: &mut Criterion) {
    let library: Vec<Update> = (0..3000).map(update).collect();
    let indexes: Vec<IndexDetail> = (1..=16).map(index).collect();
    c.bench_function("plan 3000 updates over 16 indexes", |b| {
        let catalog = Catalog {
            files: &library,
            windows: &[],
        };
        b.iter(|| plan_all(&indexes, catalog))
    });
}

fn import(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let site =
        Site::init(&dir.path().join("site"), ServicingDrive::Auto, ois::SCHEMA).expect("site");
    let pkg = dir.path().join("pkg");
    let mut manifest = String::from("id = \"KB1\"\ntitle = \"t\"\narchitecture = \"x64\"\n[[change]]\nadd = \"payload\"\nat = \"Windows/System32\"\n");
    manifest.push('\n');
    let files: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| {
            (
                format!("payload/f{i}.dll"),
                ois::sample::filler(i, 64 << 10),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    ois::sample::write_package(&pkg, &manifest, &refs).expect("package");
    let library = ContentLibrary::new(&site);
    let mut g = c.benchmark_group("library");
    g.throughput(Throughput::Bytes(500 * (64 << 10)));
    g.sample_size(10);
    g.bench_function("import (validate + hash) 500 files, 32 MiB", |b| {
        b.iter_batched(
            || site.database().expect("db"),
            |mut db| {
                library
                    .import(&mut db, std::slice::from_ref(&pkg))
                    .map(|o| o.len())
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

const TOKEN: &str = "31bf3856ad364e35";

fn cbs_identity(name: &str, version: &str) -> CbsIdentity {
    CbsIdentity {
        name: name.into(),
        public_key_token: TOKEN.into(),
        processor_architecture: "amd64".into(),
        language: String::new(),
        version: version.into(),
    }
}

/// A library package: a quarter cumulative updates, a few servicing stacks, the rest
/// feature-style packages whose parent is the foundation package.
fn windows_package(k: usize) -> CbsPackage {
    let (name, version) = match k % 20 {
        0..=4 => (
            "Package_for_RollupFix".to_string(),
            format!("22631.{}.1.7", 3000 + k),
        ),
        5 => (
            format!("Package_for_ServicingStack_{k}"),
            format!("22631.{}.1.0", 3000 + k),
        ),
        _ => (
            format!("Package_for_KB{}", 5_100_000 + k),
            "10.0.1.0".to_string(),
        ),
    };
    CbsPackage::planned(
        Some(format!("KB{}", 5_100_000 + k)),
        cbs_identity(&name, &version),
        vec![ParentRequirement {
            identity: cbs_identity("Microsoft-Windows-Foundation-Package", "10.0.22631.1"),
            build_compare: Some("EQ".into()),
            revision_compare: Some("GE".into()),
            integrate: None,
            disposition: None,
        }],
    )
}

/// An index with 2,000 installed packages, as a real Windows 11 index has.
fn windows_index(i: u32) -> IndexDetail {
    let mut detail = index(i);
    detail.packages = (0..2000)
        .map(|k| InstalledPackage {
            identity: if k == 0 {
                cbs_identity("Microsoft-Windows-Foundation-Package", "10.0.22631.1").to_string()
            } else {
                cbs_identity(
                    &format!("Microsoft-Windows-Feature{k}-Package"),
                    "10.0.22631.1",
                )
                .to_string()
            },
            state: Some(0x70),
            installed: true,
            source: "hive".into(),
        })
        .collect();
    detail
}

fn windows_planning(c: &mut Criterion) {
    let windows: Vec<CbsPackage> = (0..300).map(windows_package).collect();
    let indexes: Vec<IndexDetail> = (1..=16).map(windows_index).collect();
    let catalog = Catalog {
        files: &[],
        windows: &windows,
    };
    c.bench_function(
        "plan 300 Windows packages over 16 indexes of 2000 installed packages",
        |b| b.iter(|| plan_all(&indexes, catalog)),
    );
}

criterion_group!(benches, manifests, planning, windows_planning, import);
criterion_main!(benches);
