//! Distribution points: list (with the Maintenance mode column), properties and content
//! status, add, change, remove, SetDPMaintenanceMode, content validation, retries, layout
//! upgrades, sending an image, and the content location answer.

use serde::Serialize;

use super::CommandError;
use crate::distribution::{
    self, hresult, ContentLocation, Distribution, DistributionError, DistributionPoint, DpOutcome,
    DpProperties, LayoutUpgrade, MaintenanceChange, Nal, Validation,
};
use crate::image::{self, Image};
use crate::site::Site;

fn parse_nal(nal_path: &str) -> Result<Nal, DistributionError> {
    Nal::parse(nal_path).map_err(DistributionError::MalformedNal)
}

/// Every distribution point, with its maintenance mode.
pub fn list_dps(site: &Site) -> Result<Vec<DistributionPoint>, CommandError> {
    Ok(distribution::list(site)?)
}

/// A distribution point's properties and the status of each image version on it.
#[derive(Debug, Clone, Serialize)]
pub struct DpView {
    pub dp: DistributionPoint,
    pub distributions: Vec<Distribution>,
}

pub fn show_dp(site: &Site, nal_path: &str) -> Result<DpView, CommandError> {
    let (dp, distributions) = distribution::show(site, nal_path)?;
    Ok(DpView { dp, distributions })
}

/// Adds a distribution point; `props.target` is required.
pub fn add_dp(
    site: &Site,
    nal_path: &str,
    props: &DpProperties,
) -> Result<DistributionPoint, CommandError> {
    Ok(distribution::add(site, nal_path, props)?)
}

/// Changes a DP's properties; refused while it is in maintenance mode.
pub fn set_dp(
    site: &Site,
    nal_path: &str,
    props: &DpProperties,
) -> Result<DistributionPoint, CommandError> {
    Ok(distribution::set(site, nal_path, props)?)
}

/// Forgets a DP; its content stays on the target.
pub fn remove_dp(site: &Site, nal_path: &str) -> Result<DistributionPoint, CommandError> {
    Ok(distribution::remove(site, nal_path)?)
}

/// What `SetDPMaintenanceMode` did.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceModeSet {
    /// `S_OK` (0).
    pub return_value: u32,
    pub change: MaintenanceChange,
    /// After mode 0: the distributions that waited for the DP, sent now.
    pub sent: Vec<DpOutcome>,
    /// After mode 0: why the waiting distributions could not be sent (the mode is set).
    pub send_error: Option<String>,
}

/// Why `SetDPMaintenanceMode` failed, with the HRESULT it returns.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct MaintenanceModeFailed {
    /// The uint32 the WMI method returns (see [`hresult`]).
    pub return_value: u32,
    // Boxed: errors travel in every Result.
    pub error: Box<DistributionError>,
}

/// `SetDPMaintenanceMode(NALPath, Mode)`, MODE as given (text, so that anything but 0 or 1
/// is the method's invalid parameter). Disabling the mode sends what waited for the DP.
pub fn set_maintenance_mode(
    site: &Site,
    nal_path: &str,
    mode: &str,
) -> Result<MaintenanceModeSet, MaintenanceModeFailed> {
    let result = mode
        .trim()
        .parse::<u32>()
        .map_err(|_| DistributionError::InvalidMode(mode.to_string()))
        .and_then(|mode| {
            parse_nal(nal_path)?;
            distribution::change_maintenance_mode(site, nal_path, mode)
        });
    let change = result.map_err(|error| MaintenanceModeFailed {
        // A malformed NAL path is the answer whatever else is wrong, as the method checks its
        // first argument first.
        return_value: match parse_nal(nal_path) {
            Err(_) => hresult::E_INVALIDARG,
            Ok(_) => error.hresult(),
        },
        error: Box::new(error),
    })?;
    let (sent, send_error) = if change.mode == 0 {
        match distribution::send_pending(site, nal_path) {
            Ok(sent) => (sent, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    } else {
        (Vec::new(), None)
    };
    Ok(MaintenanceModeSet {
        return_value: hresult::S_OK,
        change,
        sent,
        send_error,
    })
}

/// Re-hashes what each DP (or only `nal_path`) holds against the site database.
pub fn validate_dps(site: &Site, nal_path: Option<&str>) -> Result<Vec<Validation>, CommandError> {
    let nal = nal_path.map(parse_nal).transpose()?;
    Ok(distribution::validate(site, nal.as_ref())?)
}

/// Sends the pending and failed distributions whose retry time has come.
pub fn retry_distributions(site: &Site) -> Result<Vec<DpOutcome>, CommandError> {
    Ok(distribution::retry_due(site)?)
}

/// Moves every DP's content to the current layout.
pub fn upgrade_dp_layouts(site: &Site) -> Result<Vec<LayoutUpgrade>, CommandError> {
    Ok(distribution::upgrade_layouts(site)?)
}

/// Where an image's current version went.
#[derive(Debug, Clone, Serialize)]
pub struct Distributed {
    pub image: Image,
    /// Empty: the image is on no DP and assigned to none.
    pub outcomes: Vec<DpOutcome>,
}

/// Sends the current version of the image `key` to `dps` (which become assigned to it), or
/// to every DP that holds it or is assigned to it; `jobs` transfers at once.
pub fn distribute_image(
    site: &Site,
    key: &str,
    dps: &[String],
    jobs: usize,
) -> Result<Distributed, CommandError> {
    let nals: Vec<Nal> = dps.iter().map(|s| parse_nal(s)).collect::<Result<_, _>>()?;
    let image = image::find(&site.database()?, key)?;
    let outcomes = distribution::distribute_image_with(
        site,
        image.id,
        (!nals.is_empty()).then_some(nals.as_slice()),
        jobs,
    )?;
    Ok(Distributed { image, outcomes })
}

/// The content location answer: DPs outside maintenance mode that hold the current version
/// of the image `key`, optionally only those in `boundary_group`.
pub fn locate_content(
    site: &Site,
    key: &str,
    boundary_group: Option<&str>,
) -> Result<Vec<ContentLocation>, CommandError> {
    Ok(distribution::locate(site, key, boundary_group)?)
}
