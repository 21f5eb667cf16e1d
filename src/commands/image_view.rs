//! The image properties view: what a console shows of one image (its Update Status, Installed
//! Updates per index, the Servicing view of its schedule, provisioning mode, the run history
//! and where its versions are distributed).

use serde::Serialize;

use super::CommandError;
use crate::distribution::{self, Distribution};
use crate::hint::Hint;
use crate::image::{self, Image, IndexDetail, NestedImage};
use crate::library::ContentLibrary;
use crate::schedule::{self, Schedule, ScheduledStatus};
use crate::servicing::lease::ProvisioningMode;
use crate::servicing::{self, Catalog, PlanError, RunRecord, UpdateResult};
use crate::site::Site;

/// One image, as `ois image show` and the console show it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    pub image: Image,
    pub scheduled_updates_date: Option<String>,
    pub scheduled_updates_status: ScheduledStatus,
    /// The last run's result per update and index.
    pub update_status: Option<Vec<UpdateResult>>,
    pub installed_updates: Vec<InstalledUpdates>,
    pub servicing: ServicingView,
    pub provisioning_mode: Option<ProvisioningMode>,
    /// The last run's log (ois's `dism.log`).
    pub log: Option<String>,
    pub indexes: Vec<IndexDetail>,
    /// The WIMs inside its indexes (Winre.wim): parent indexes, their own indexes with
    /// architecture and build, installed updates, or why one cannot be serviced.
    pub nested: Vec<NestedImage>,
    /// Newest first.
    pub runs: Vec<RunRecord>,
    pub distribution: Vec<Distribution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstalledUpdates {
    pub index: u32,
    pub updates: Vec<image::InstalledUpdate>,
}

/// The read-only Servicing view: the schedule, and what it would apply if it ran now.
#[derive(Debug, Clone, Serialize)]
pub struct ServicingView {
    pub schedule: Option<Schedule>,
    pub will_apply: Option<Vec<String>>,
    /// Why the schedule could not run now (its plan fails, or this host cannot carry it out).
    pub plan_error: Option<String>,
    /// What to do about `plan_error`, when there is more to do than change the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_hint: Option<Hint>,
}

/// The view of the image `key` (id or name).
pub fn image_view(site: &Site, key: &str) -> Result<ImageView, CommandError> {
    let db = site.database()?;
    let image = image::find(&db, key)?;
    let indexes = image::indexes(&db, &image)?;
    let runs = servicing::history(&db, image.id)?;
    let provisioning_mode = servicing::lease::current(&db, image.id).map_err(|e| db.error(e))?;
    let (scheduled_updates_status, scheduled_updates_date) = schedule::status(&db, image.id)?;
    let schedule = schedule::get(&db, image.id)?;
    let (will_apply, plan_error) = match &schedule {
        Some(s) => {
            let library = ContentLibrary::new(site);
            let files = library.all(&db)?;
            let windows = library.windows_packages(&db)?;
            let catalog = Catalog {
                files: &files,
                windows: &windows,
            };
            match servicing::nested::plan_image(
                &db, &image, &indexes, catalog, &s.updates, s.target,
            )
            .and_then(|(p, nested)| {
                servicing::servicer::check(&p)
                    .map(|()| {
                        let mut order = p.order;
                        for n in nested {
                            for id in n.plan.order {
                                if !order.contains(&id) {
                                    order.push(id);
                                }
                            }
                        }
                        order
                    })
                    .map_err(PlanError::from)
            }) {
                Ok(order) => (Some(order), None),
                Err(e) => (None, Some(e)),
            }
        }
        None => (Some(Vec::new()), None),
    };
    let distribution = distribution::image_distributions(&db, image.id)?;
    let nested = image::nested_images(&db, &image)?;
    let last = runs.first();
    Ok(ImageView {
        update_status: last.map(|r| r.updates.clone()),
        log: last.and_then(|r| r.log_path.clone()),
        installed_updates: indexes
            .iter()
            .map(|i| InstalledUpdates {
                index: i.info.index,
                updates: i.installed.clone(),
            })
            .collect(),
        servicing: ServicingView {
            schedule,
            will_apply,
            plan_hint: plan_error.as_ref().and_then(|e| e.hint.clone()),
            plan_error: plan_error.map(|e| e.reason),
        },
        image,
        scheduled_updates_date,
        scheduled_updates_status,
        provisioning_mode,
        indexes,
        nested,
        runs,
        distribution,
    })
}

/// The runs of the image `key` (id or name), newest first: the History tab, without the rest
/// of the view (whose Servicing part plans the schedule).
pub fn image_runs(site: &Site, key: &str) -> Result<Vec<RunRecord>, CommandError> {
    let db = site.database()?;
    let image = image::find(&db, key)?;
    Ok(servicing::history(&db, image.id)?)
}
