//! The content library: updates listed with a text filter and a system architecture, the
//! updates applicable to an image, one update's record, and import.

use std::path::PathBuf;

use serde::Serialize;

use super::CommandError;
use crate::image;
use crate::library::cbs::CbsPackage;
use crate::library::{
    self, ArchFilter, ContentLibrary, ImportOutcome, LibraryError, PackageKind, PayloadFile, Update,
};
use crate::servicing;
use crate::site::Site;

/// The Schedule Updates wizard's choice: a text filter over the metadata, and the system
/// architecture (X86, X64, ARM64 or All).
#[derive(Debug, Clone)]
pub struct UpdateQuery {
    /// Matched in the id, title or classification (of a Windows package: also its identity,
    /// kind, release type and file names); `None` matches everything.
    pub filter: Option<String>,
    pub architecture: ArchFilter,
}

impl Default for UpdateQuery {
    fn default() -> Self {
        UpdateQuery {
            filter: None,
            architecture: ArchFilter::All,
        }
    }
}

impl UpdateQuery {
    fn takes_file(&self, u: &Update) -> bool {
        self.architecture.matches(u.manifest.architecture)
            && library::matches_text(&u.manifest, self.filter.as_deref())
    }

    /// A Windows package whose architecture is none of the filter's (wow64 aside) is taken
    /// only for All.
    fn takes_windows(&self, p: &CbsPackage) -> bool {
        p.matches_text(self.filter.as_deref())
            && match p.arch_filter_value() {
                Some(a) => self.architecture.matches(a),
                None => self.architecture == ArchFilter::All,
            }
    }
}

/// An update of the content library: an ois package (kind `file`) or a Windows package (kind
/// `cbs`), with every field of its record and its kind.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum UpdateSummary {
    // Boxed, both: the two records differ in size several times over.
    File {
        #[serde(flatten)]
        update: Box<Update>,
        kind: PackageKind,
        /// The payload files: given by [`show_update`] only.
        #[serde(skip_serializing_if = "Option::is_none")]
        files: Option<Vec<PayloadFile>>,
    },
    Windows {
        #[serde(flatten)]
        package: Box<CbsPackage>,
        id: String,
        kind: PackageKind,
        title: String,
    },
}

impl UpdateSummary {
    fn file(update: Update) -> Self {
        UpdateSummary::File {
            update: Box::new(update),
            kind: PackageKind::File,
            files: None,
        }
    }

    fn windows(package: CbsPackage) -> Self {
        UpdateSummary::Windows {
            id: package.id().to_string(),
            title: format!("{} {}", package.kind.label(), package.identity),
            kind: PackageKind::Cbs,
            package: Box::new(package),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            UpdateSummary::File { update, .. } => update.id(),
            UpdateSummary::Windows { id, .. } => id,
        }
    }

    pub fn kind(&self) -> PackageKind {
        match self {
            UpdateSummary::File { kind, .. } | UpdateSummary::Windows { kind, .. } => *kind,
        }
    }

    pub fn architecture(&self) -> String {
        match self {
            UpdateSummary::File { update, .. } => update.manifest.architecture.to_string(),
            UpdateSummary::Windows { package, .. } => package.architecture.clone(),
        }
    }

    pub fn classification(&self) -> Option<&str> {
        match self {
            UpdateSummary::File { update, .. } => update.manifest.classification.as_deref(),
            UpdateSummary::Windows { package, .. } => package.classification.as_deref(),
        }
    }

    pub fn title(&self) -> &str {
        match self {
            UpdateSummary::File { update, .. } => &update.manifest.title,
            UpdateSummary::Windows { title, .. } => title,
        }
    }
}

/// Updates of the content library that pass `query`: ois packages, then Windows packages.
pub fn list_updates(site: &Site, query: &UpdateQuery) -> Result<Vec<UpdateSummary>, CommandError> {
    let db = site.database()?;
    let library = ContentLibrary::new(site);
    let files = library.list(&db, query.filter.as_deref(), query.architecture)?;
    let windows = library.windows_packages(&db)?;
    Ok(files
        .into_iter()
        .map(UpdateSummary::file)
        .chain(
            windows
                .into_iter()
                .filter(|p| query.takes_windows(p))
                .map(UpdateSummary::windows),
        )
        .collect())
}

/// The updates that apply to the image `key` (id or name) and are not installed on it yet,
/// passing `query`: what the Schedule Updates wizard offers.
pub fn applicable_updates(
    site: &Site,
    key: &str,
    query: &UpdateQuery,
) -> Result<Vec<UpdateSummary>, CommandError> {
    let db = site.database()?;
    let img = image::find(&db, key)?;
    let indexes = image::indexes(&db, &img)?;
    let library = ContentLibrary::new(site);
    let files = library.all(&db)?;
    let windows = library.windows_packages(&db)?;
    // Updates for its nested images (Winre.wim) count too: a run of the image applies them.
    let mut all_indexes = indexes.clone();
    for n in image::nested_images(&db, &img)?
        .into_iter()
        .filter(|n| n.error.is_none())
    {
        all_indexes.extend(n.indexes);
    }
    let applicable_files: Vec<UpdateSummary> = servicing::applicable(&all_indexes, &files)
        .into_iter()
        .filter(|u| query.takes_file(u))
        .map(|u| UpdateSummary::file(u.clone()))
        .collect();
    let applicable_windows = servicing::plan::windows::applicable(&indexes, &windows)
        .into_iter()
        .filter(|p| query.takes_windows(p))
        .map(|p| UpdateSummary::windows(p.clone()));
    Ok(applicable_files
        .into_iter()
        .chain(applicable_windows)
        .collect())
}

/// Every update `key` names (an update id, a KB, a Windows package identity), ois packages
/// with their payload files.
pub fn show_update(site: &Site, key: &str) -> Result<Vec<UpdateSummary>, CommandError> {
    let db = site.database()?;
    let library = ContentLibrary::new(site);
    let mut found: Vec<UpdateSummary> = library
        .all(&db)?
        .into_iter()
        .filter(|u| u.id().eq_ignore_ascii_case(key.trim()))
        .map(|u| UpdateSummary::File {
            files: Some(u.files.clone()),
            update: Box::new(u),
            kind: PackageKind::File,
        })
        .collect();
    found.extend(
        library
            .windows_packages(&db)?
            .into_iter()
            .filter(|p| p.is_named(key))
            .map(UpdateSummary::windows),
    );
    if found.is_empty() {
        return Err(LibraryError::UnknownUpdate(key.to_string()).into());
    }
    Ok(found)
}

/// Imports update packages (see [`ContentLibrary::import`]); each new payload is compressed
/// at once for the compression types of the registered images, so no run has to.
pub fn import_updates(site: &Site, paths: &[PathBuf]) -> Result<Vec<ImportOutcome>, CommandError> {
    let mut db = site.database()?;
    let library = ContentLibrary::new(site);
    let outcomes = library.import(&mut db, paths)?;
    let compressions = image::compressions(&db)?;
    if !compressions.is_empty() {
        for u in library.all(&db)? {
            if outcomes.iter().any(|o| o.id.eq_ignore_ascii_case(u.id())) {
                if let Err(e) = library.prepare_compressed(&db, &u, &compressions) {
                    tracing::warn!(
                        "update {}: payload not compressed ahead ({e}); servicing will",
                        u.id()
                    );
                }
            }
        }
    }
    Ok(outcomes)
}
