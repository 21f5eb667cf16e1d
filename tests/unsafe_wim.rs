//! `ois image import` must refuse WIMs whose metadata is hostile or damaged, say why, and
//! leave both the file and the catalog untouched.
//!
//! The hostile WIMs are crafted by hand: capture a small tree without compression (so the
//! metadata resource is stored as plain bytes), patch a directory entry in place, then
//! recompute the metadata resource's SHA-1 and store it in its blob table entry. wimlib
//! checks that SHA-1 when it loads an image; nothing else covers the metadata once the WIM is
//! written without an integrity table (the header has no checksum and the XML, whose
//! TOTALBYTES is informational, is a separate resource that is not touched).
//!
//! On-disk layout used here (wimlib include/wimlib/header.h, resource.h, src/blob_table.c,
//! src/dentry.c):
//! - header: blob table resource header at 0x30;
//! - resource header (24 bytes): 7-byte size in WIM, 1 flag byte, u64 offset, u64 size;
//! - blob table entry (50 bytes): resource header, u16 part, u32 refcount, 20-byte SHA-1;
//! - directory entry: u64 length at 0x00, u64 subdir offset at 0x10, u16 name length in
//!   bytes at 0x64, then the UTF-16LE name at 0x66.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ois::sample::{build_wim, filler, write_tree, IndexSpec};
use ois::wim::{Compression, Progress, Wim};

const RESHDR_FLAG_METADATA: u8 = 0x02;
const RESHDR_FLAG_COMPRESSED: u8 = 0x04;
const BLOB_ENTRY_SIZE: usize = 50;
const DENTRY_SUBDIR_OFFSET: usize = 0x10;
const DENTRY_NAME_NBYTES: usize = 0x64;
const DENTRY_NAME: usize = 0x66;

// ---------------------------------------------------------------------------------------
// SHA-1 (FIPS 180-4), small and slow, so no dependency is needed just for this test.

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[test]
fn sha1_matches_known_vectors() {
    let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(
        hex(sha1(b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    // Two blocks of padding.
    assert_eq!(
        hex(sha1(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        )),
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
    );
    assert_eq!(
        hex(sha1(&[b'a'; 1000])),
        "291e9a6c66994949b57ba5e650361e98fc36b1ba"
    );
}

// ---------------------------------------------------------------------------------------
// Crafting WIMs.

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A resource header: (offset in the file, size in the file, flags).
fn reshdr(b: &[u8], at: usize) -> (usize, usize, u8) {
    let mut size = [0u8; 8];
    size[..7].copy_from_slice(&b[at..at + 7]);
    (
        u64_at(b, at + 8) as usize,
        u64::from_le_bytes(size) as usize,
        b[at + 7],
    )
}

/// Captures `files` as the single image of an uncompressed WIM written without an integrity
/// table (`build_wim` always adds one, which would also have to be recomputed).
fn plain_wim(work: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let tree = work.join(format!("{name}-tree"));
    std::fs::create_dir_all(&tree).unwrap();
    write_tree(&tree, files).unwrap();
    let wim = Wim::create(Compression::None).unwrap();
    wim.add_image(&tree, "Windows 11 Pro").unwrap();
    wim.set_property(1, "WINDOWS/ARCH", Some("9")).unwrap();
    wim.set_property(1, "WINDOWS/EDITIONID", Some("Professional"))
        .unwrap();
    wim.set_property(1, "WINDOWS/VERSION/BUILD", Some("22631"))
        .unwrap();
    let path = work.join(format!("{name}.wim"));
    wim.write(&path, false, 0, &mut |_| Progress::Continue)
        .unwrap();
    path
}

/// Lets `patch` edit the (uncompressed) metadata resource of the WIM's only image in place,
/// then stores the new SHA-1 in the blob table entry that carried the old one.
fn patch_metadata(wim: &Path, patch: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(wim).unwrap();
    let (table_at, table_len, _) = reshdr(&bytes, 0x30);
    let entries: Vec<usize> = (table_at..table_at + table_len)
        .step_by(BLOB_ENTRY_SIZE)
        .filter(|&e| bytes[e + 7] & RESHDR_FLAG_METADATA != 0)
        .collect();
    assert_eq!(entries.len(), 1, "one image, so one metadata resource");
    let entry = entries[0];
    let (at, len, flags) = reshdr(&bytes, entry);
    assert_eq!(
        flags & RESHDR_FLAG_COMPRESSED,
        0,
        "the metadata resource must be stored uncompressed"
    );
    let hash_at = entry + 24 + 2 + 4;
    // Proves the parsing above (and the SHA-1) before anything is changed.
    assert_eq!(
        sha1(&bytes[at..at + len]),
        bytes[hash_at..hash_at + 20],
        "blob table entry holds the metadata SHA-1"
    );

    patch(&mut bytes[at..at + len]);

    let digest = sha1(&bytes[at..at + len]);
    bytes[hash_at..hash_at + 20].copy_from_slice(&digest);
    std::fs::write(wim, bytes).unwrap();
}

/// Offset of the one directory entry named `name` in a metadata resource.
fn find_dentry(metadata: &[u8], name: &str) -> usize {
    // The name length field directly precedes the name; matching both avoids hitting the
    // same characters inside a longer name.
    let units: Vec<u16> = name.encode_utf16().collect();
    let mut needle = ((units.len() * 2) as u16).to_le_bytes().to_vec();
    needle.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    let hits: Vec<usize> = metadata
        .windows(needle.len())
        .enumerate()
        .filter(|&(i, w)| i >= DENTRY_NAME_NBYTES && w == needle.as_slice())
        .map(|(i, _)| i - DENTRY_NAME_NBYTES)
        .collect();
    assert_eq!(hits.len(), 1, "exactly one entry named {name:?}");
    let dentry = hits[0];
    assert!(
        u64_at(metadata, dentry) as usize >= DENTRY_NAME + needle.len(),
        "plausible entry length"
    );
    dentry
}

/// Renames an entry to a name of the same length, in place.
fn rename_entry(metadata: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.encode_utf16().count(), to.encode_utf16().count());
    let at = find_dentry(metadata, from) + DENTRY_NAME;
    for (i, u) in to.encode_utf16().enumerate() {
        metadata[at + 2 * i..at + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// Driving the ois binary.

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let site = Site {
            root,
            work,
            _dir: dir,
        };
        let out = site.ois(&["site", "init"]);
        assert!(
            out.status.success(),
            "site init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        site
    }

    fn ois(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ois"))
            .arg("--site")
            .arg(&self.root)
            .args(args)
            .env_remove("OIS_SITE")
            .output()
            .unwrap()
    }

    fn import(&self, wim: &Path) -> Output {
        self.ois(&["image", "import", wim.to_str().unwrap()])
    }

    fn registered_images(&self) -> usize {
        let out = self.ois(&["image", "list", "--json"]);
        assert!(out.status.success());
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array().expect("a JSON array").len()
    }

    /// Imports `wim`, which must be refused with a message containing every one of
    /// `expected`; returns stderr. The file must be byte-identical afterwards and the
    /// catalog unchanged.
    fn assert_refused(&self, wim: &Path, expected: &[&str]) -> String {
        let before = std::fs::read(wim).unwrap();
        let images = self.registered_images();
        let out = self.import(wim);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "import of {} should fail; stdout: {}",
            wim.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        for e in expected {
            assert!(
                stderr.contains(e),
                "error should mention {e:?}, got: {stderr}"
            );
        }
        assert!(
            std::fs::read(wim).unwrap() == before,
            "{} was modified",
            wim.display()
        );
        assert_eq!(
            self.registered_images(),
            images,
            "nothing may be registered"
        );
        stderr
    }
}

fn small_tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("Windows/System32/kernel32.dll", filler(1, 8 * 1024)),
        ("Windows/ab", b"traversal victim\n".to_vec()),
        ("Windows/d/inner.txt", b"inside d\n".to_vec()),
    ]
}

// ---------------------------------------------------------------------------------------
// Tests.

/// The crafting itself is sound: a harmless same-length rename with the SHA-1 fixed up
/// imports fine, so the refusals below come from what was patched, not from the patching.
#[test]
fn patched_but_harmless_wim_imports() {
    let site = Site::new();
    let wim = plain_wim(&site.work, "harmless", &small_tree());
    patch_metadata(&wim, |m| rename_entry(m, "ab", "cd"));
    let out = site.import(&wim);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(site.registered_images(), 1);
}

/// An entry named ".." could escape the extraction directory. wimlib drops it with only a
/// warning; servicing such an image would silently write it back without that entry, so
/// ois refuses it.
#[test]
fn dotdot_entry_is_refused() {
    let site = Site::new();
    let wim = plain_wim(&site.work, "dotdot", &small_tree());
    patch_metadata(&wim, |m| rename_entry(m, "ab", ".."));
    let stderr = site.assert_refused(
        &wim,
        &[
            "unsafe entries",
            "dotdot.wim",
            "Ignoring file named \".\" or \"..\"",
        ],
    );
    assert!(stderr.contains("index 1"), "{stderr}");
}

/// A directory whose children list starts at its own entry contains itself forever. wimlib
/// stops at a depth limit and reports the metadata invalid.
#[test]
fn cyclic_directory_is_refused() {
    let site = Site::new();
    let wim = plain_wim(&site.work, "cyclic", &small_tree());
    patch_metadata(&wim, |m| {
        let d = find_dentry(m, "d");
        assert_ne!(
            u64_at(m, d + DENTRY_SUBDIR_OFFSET),
            0,
            "d is a directory with children"
        );
        m[d + DENTRY_SUBDIR_OFFSET..d + DENTRY_SUBDIR_OFFSET + 8]
            .copy_from_slice(&(d as u64).to_le_bytes());
    });
    site.assert_refused(&wim, &["cyclic.wim", "too deep"]);
}

fn sample_lzx_wim(work: &Path, name: &str) -> PathBuf {
    let tree = work.join(format!("{name}-tree"));
    write_tree(&tree, &small_tree()).unwrap();
    let path = work.join(format!("{name}.wim"));
    build_wim(
        &path,
        Compression::Lzx,
        &[IndexSpec {
            name: "Windows 11 Pro",
            edition: "Professional",
            architecture: ois::library::Architecture::X64,
            build: 22631,
            tree: &tree,
        }],
    )
    .unwrap();
    path
}

/// A WIM cut off in the middle (an interrupted copy) is refused, naming the file.
#[test]
fn truncated_wim_is_refused() {
    let site = Site::new();
    let wim = sample_lzx_wim(&site.work, "truncated");
    let len = std::fs::metadata(&wim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    site.assert_refused(&wim, &["truncated.wim", "end of the file"]);
}

/// Damaged compressed metadata in a WIM without integrity table (nothing to catch it at open
/// time) is caught when the image is loaded.
#[test]
fn corrupt_compressed_metadata_is_refused() {
    let site = Site::new();
    let wim = site.work.join("garbled.wim");
    {
        // Same content as the sample, rewritten without an integrity table.
        let with_table = sample_lzx_wim(&site.work, "garbled-src");
        let src = Wim::open(&with_table, true).unwrap();
        src.write(&wim, false, 0, &mut |_| Progress::Continue)
            .unwrap();
    }
    let mut bytes = std::fs::read(&wim).unwrap();
    let (table_at, table_len, _) = reshdr(&bytes, 0x30);
    let entry = (table_at..table_at + table_len)
        .step_by(BLOB_ENTRY_SIZE)
        .find(|&e| bytes[e + 7] & RESHDR_FLAG_METADATA != 0)
        .unwrap();
    let (at, len, flags) = reshdr(&bytes, entry);
    assert_ne!(flags & RESHDR_FLAG_COMPRESSED, 0);
    for b in &mut bytes[at + len / 2 - 8..at + len / 2 + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&wim, bytes).unwrap();
    // The damage either breaks decompression or decompresses to bytes whose SHA-1 differs;
    // which one depends on where the flipped bits land in this run's LZX stream.
    let stderr = site.assert_refused(&wim, &["garbled.wim"]);
    assert!(
        stderr.contains("decompress") || stderr.contains("SHA-1"),
        "{stderr}"
    );
}

fn tree_with_sibling(extra: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = small_tree()
        .into_iter()
        .map(|(p, b)| (p.to_string(), b))
        .collect();
    files.push((format!("Windows/{extra}"), b"the sibling\n".to_vec()));
    files
}

/// Two entries of one directory with the same name (as wimlib's own
/// tests/wims/duplicate_names.wim): wimlib keeps the first and drops the other with a
/// warning. ois finds the drop by comparing the entries the metadata stores with the tree
/// wimlib loaded, and refuses the import naming the file, the index and the path.
#[test]
fn duplicate_names_are_refused() {
    let site = Site::new();
    let files = tree_with_sibling("cd");
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let wim = plain_wim(&site.work, "duplicate-names", &borrowed);
    patch_metadata(&wim, |m| rename_entry(m, "cd", "ab"));
    let stderr = site.assert_refused(
        &wim,
        &[
            "duplicate-names.wim",
            "index 1",
            "entry \"/Windows/ab\" is not loaded",
            "stores 8 entries, wimlib loads 7",
        ],
    );
    assert!(stderr.contains("Ignoring duplicate file"), "{stderr}");
}

/// An image registered before ois checked for dropped entries (here: its catalog row made to
/// match a file patched afterwards) is refused by servicing, which checks each index loads
/// whole, and the file stays byte-identical.
#[test]
fn registered_image_with_duplicate_names_is_not_serviced() {
    let site = Site::new();
    let files = tree_with_sibling("cd");
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let wim = plain_wim(&site.work, "registered", &borrowed);
    let out = site.import(&wim);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    patch_metadata(&wim, |m| rename_entry(m, "cd", "ab"));
    let patched = std::fs::read(&wim).unwrap();
    {
        use sha2::Digest;
        let db = rusqlite::Connection::open(site.root.join("site.db")).unwrap();
        let sha256: String = sha2::Sha256::digest(&patched)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        db.execute(
            "UPDATE images SET sha256 = ?1, size_bytes = ?2",
            rusqlite::params![sha256, patched.len() as i64],
        )
        .unwrap();
        db.execute("DELETE FROM verified_files", []).unwrap();
    }
    let package = ois::sample::write_package(
        &site.work.join("KB5050002"),
        "id = \"KB5050002\"\ntitle = \"t\"\narchitecture = \"x64\"\n[[change]]\nadd = \"new.dll\"\nat = \"Windows/System32/new.dll\"\n",
        &[("new.dll", filler(9, 4096))],
    )
    .unwrap();
    let out = site.ois(&["update", "import", package.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = site.ois(&["service", "registered", "--updates", "KB5050002"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("entry \"/Windows/ab\" is not loaded"), "{all}");
    assert!(
        std::fs::read(&wim).unwrap() == patched,
        "the WIM was modified"
    );
}
