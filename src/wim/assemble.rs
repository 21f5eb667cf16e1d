//! Building a WIM in parts: a first write holds the leading images, and each later part is
//! exported into it and compacted in place, so no image's tree needs to stay in memory until
//! the end and no part of the file is written twice.

use std::ffi::c_int;
use std::path::Path;

use super::sys;
use super::{diagnostics, Progress, ProgressEvent, Wim, WimError};

impl Wim {
    /// Opens a WIM that this process wrote and will compact in place ([`Wim::compact`]).
    pub fn open_for_compaction(path: &Path) -> Result<Wim, WimError> {
        Self::open_with(
            path,
            sys::WIMLIB_OPEN_FLAG_ERROR_IF_SPLIT | sys::WIMLIB_OPEN_FLAG_WRITE_ACCESS,
        )
    }

    /// Drops the images after `keep` from this in-memory WIM (the file is untouched until
    /// written), so that a write holds only the leading ones.
    pub fn keep_leading_images(&self, keep: u32) -> Result<(), WimError> {
        let count = self.header().image_count;
        // From the last one down: a deletion renumbers the images after it.
        for index in (keep + 1..=count).rev() {
            // SAFETY: index is a valid 1-based image of this WIM.
            let rc = unsafe { sys::wimlib_delete_image(self.raw, index as c_int) };
            self.check("leaving out an image of", rc)?;
        }
        Ok(())
    }

    /// Appends image `index` of this WIM (its tree, name, description and XML properties, and
    /// its data by reference) to `dest`, to be written by `dest`'s next write. `dest` cannot
    /// check what wimlib drops while loading an exported image (its metadata is in another
    /// file): check it here first ([`Wim::load_image_checked`]). Export an image
    /// before changing it, drop this WIM (wimlib keeps its file open for `dest`: an exported
    /// image cannot change while two WIMs share it) and change it in `dest`: the files of an
    /// image changed here would point at this WIM's own records of their data, and `dest`
    /// would write a second copy of data it already holds.
    pub fn export_image_to(&self, index: u32, dest: &Wim) -> Result<(), WimError> {
        // SAFETY: both handles are valid; names and descriptions come from this WIM.
        let rc = unsafe {
            sys::wimlib_export_image(
                self.raw,
                index as c_int,
                dest.raw,
                std::ptr::null(),
                std::ptr::null(),
                0,
            )
        };
        dest.check("adding an image to", rc)
    }

    pub fn set_boot_index(&self, boot_index: u32) -> Result<(), WimError> {
        // SAFETY: only boot_index is read for WIMLIB_CHANGE_BOOT_INDEX.
        let rc = unsafe {
            let mut info = std::mem::zeroed::<sys::wimlib_wim_info>();
            info.boot_index = boot_index;
            sys::wimlib_set_wim_info(self.raw, &info, sys::WIMLIB_CHANGE_BOOT_INDEX as c_int)
        };
        self.check("setting the boot index of", rc)
    }

    /// Writes what changed into the file in place, without holes: resources already there
    /// stay where they are, new ones follow them, then the tables. Only for a file of the
    /// caller's own that nothing else reads: an interrupted compaction leaves it unusable.
    /// Returns `Ok(false)` when wimlib finds the layout cannot be compacted; the file is then
    /// untouched and the caller writes the WIM anew instead.
    pub fn compact(
        &self,
        integrity: bool,
        sink: &mut dyn FnMut(ProgressEvent) -> Progress,
    ) -> Result<bool, WimError> {
        let flags = sys::WIMLIB_WRITE_FLAG_UNSAFE_COMPACT
            | if integrity {
                sys::WIMLIB_WRITE_FLAG_CHECK_INTEGRITY
            } else {
                sys::WIMLIB_WRITE_FLAG_NO_CHECK_INTEGRITY
            };
        let _guard = diagnostics::exclusive();
        diagnostics::take();
        // SAFETY: the handle is valid. After a successful overwrite wimlib allows only
        // wimlib_free: the caller drops the WIM (after a refused one it may write it anew).
        let rc = self.with_progress(sink, || unsafe {
            sys::wimlib_overwrite(self.raw, flags as c_int, 0)
        });
        // wimlib always warns that a compaction must not be interrupted; that holds for a
        // file only this run writes, and the run log need not say so for every pass. (On a
        // failure the messages go with the error.)
        if rc == 0 {
            diagnostics::take_except(&[
                "is being compacted in place",
                "Do *not* interrupt the operation",
                "corrupted!",
            ]);
        }
        if rc as u32 == sys::wimlib_error_code_WIMLIB_ERR_COMPACTION_NOT_POSSIBLE {
            return Ok(false);
        }
        self.check("writing", rc)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{filler, write_tree};
    use crate::wim::{Compression, UpdateCommand};

    fn no_progress(_: ProgressEvent) -> Progress {
        Progress::Continue
    }

    /// Three images sharing a file, each with one of its own; the second is bootable.
    fn original(dir: &Path) -> std::path::PathBuf {
        let wim = Wim::create(Compression::Lzx).expect("create");
        for i in 1..=3u8 {
            let tree = dir.join(format!("tree{i}"));
            let own = format!("Windows/own{i}.dll");
            write_tree(
                &tree,
                &[
                    ("Windows/shared.dll", filler(1, 120 * 1024)),
                    (own.as_str(), filler(10 + i as u64, 40 * 1024)),
                ],
            )
            .expect("tree");
            wim.add_image(&tree, &format!("image {i}")).expect("add");
        }
        wim.set_property(2, "DESCRIPTION", Some("second"))
            .expect("prop");
        wim.set_boot_index(2).expect("boot");
        let path = dir.join("original.wim");
        wim.write(&path, true, 0, &mut no_progress).expect("write");
        path
    }

    fn file(wim: &Wim, index: u32, path: &str) -> Option<u64> {
        wim.entry(index, path).expect("entry").map(|e| e.size)
    }

    #[test]
    fn a_wim_written_in_parts_holds_every_image_with_its_changes_and_no_holes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = original(dir.path());
        let added = dir.path().join("added.dll");
        std::fs::write(&added, filler(99, 70 * 1024)).expect("added");
        let add = |wim: &Wim, index: u32| {
            wim.update(
                index,
                &[UpdateCommand::Add {
                    source: added.clone(),
                    target: format!("/Windows/added{index}.dll"),
                }],
            )
            .expect("update")
        };
        let out = dir.path().join("out.wim");
        // The added file also sits compressed in a payload WIM, as the content library keeps it.
        let payload = dir.path().join("payload.wim");
        let payload_tree = dir.path().join("payload");
        write_tree(&payload_tree, &[("added.dll", filler(99, 70 * 1024))]).expect("tree");
        let p = Wim::create(Compression::Lzx).expect("create");
        p.add_image(&payload_tree, "payload").expect("add");
        p.write(&payload, false, 0, &mut no_progress)
            .expect("write");
        drop(p);

        // Part one: image 1, changed; images 2 and 3 left out.
        let first = Wim::open(&original, false).expect("open");
        first.reference(&[&payload]).expect("reference");
        add(&first, 1);
        first.hash_added_data(1).expect("hash");
        first.keep_leading_images(1).expect("keep");
        first
            .write_unsynced(&out, false, 0, &mut no_progress)
            .expect("write part");
        drop(first);
        // Part two: images 2 and 3 exported unchanged from a fresh open of the original, then
        // 3 changed in the part-one file's WIM, which resolves the added data against its own.
        let source = Wim::open(&original, false).expect("open");
        let dest = Wim::open_for_compaction(&out).expect("open out");
        dest.reference(&[&payload]).expect("reference");
        source.export_image_to(2, &dest).expect("export");
        source.export_image_to(3, &dest).expect("export");
        drop(source);
        add(&dest, 3);
        dest.hash_added_data(3).expect("hash");
        dest.set_boot_index(2).expect("boot");
        assert!(dest.compact(true, &mut no_progress).expect("compact"));

        let done = Wim::open(&out, true).expect("integrity holds");
        let header = done.header();
        assert_eq!((header.image_count, header.boot_index), (3, 2));
        assert!(header.has_integrity_table);
        assert_eq!(done.property(2, "DESCRIPTION").as_deref(), Some("second"));
        for index in 1..=3 {
            assert_eq!(done.property(index, "NAME"), Some(format!("image {index}")));
            assert_eq!(file(&done, index, "/Windows/shared.dll"), Some(120 * 1024));
            let own = format!("/Windows/own{index}.dll");
            assert_eq!(file(&done, index, &own), Some(40 * 1024));
        }
        assert_eq!(file(&done, 1, "/Windows/added1.dll"), Some(70 * 1024));
        assert_eq!(file(&done, 2, "/Windows/added2.dll"), None);
        assert_eq!(file(&done, 3, "/Windows/added3.dll"), Some(70 * 1024));
        done.verify(&mut no_progress).expect("every blob sound");
        // No holes: the resources and tables account for the whole file.
        let blobs = done.blobs().expect("blobs");
        assert_eq!(
            blobs.iter().filter(|b| !b.metadata).count(),
            5,
            "shared, three own files and the added one, each once"
        );
        let end_of_resources = blobs
            .iter()
            .map(|b| b.offset + b.stored_size)
            .max()
            .expect("resources");
        let stored: u64 = blobs.iter().map(|b| b.stored_size).sum();
        assert_eq!(end_of_resources, 208 + stored, "resources are contiguous");
    }
}
