//! Hints rendered as the `ois` command line that does the next step.

use ois::hint::Hint;

/// The error's message followed by its hint, in the CLI's words.
pub fn with_hint(message: &str, hint: Option<&Hint>) -> String {
    match hint {
        Some(h) => format!("{message}{}", suffix(h)),
        None => message.to_string(),
    }
}

/// What follows the message, its joining punctuation included.
fn suffix(hint: &Hint) -> String {
    match hint {
        Hint::ListImages => ": see `ois image list`".into(),
        Hint::ListImagesOrRename => ": see `ois image list`, or choose another --name".into(),
        Hint::RenameImage => ": choose another with --name".into(),
        Hint::ShowImage { image } => format!(" (see `ois image show {image}`)"),
        Hint::CancelRun { image } => {
            format!(": cancel it with `ois image cancel {image}`, or wait for it to end")
        }
        Hint::LeaveProvisioningMode { image } => {
            format!("; repair the image with `ois image set-provisioning-mode {image} false`")
        }
        Hint::FindOrImportUpdate { .. } => {
            ": see `ois update list`, or import it with `ois update import`".into()
        }
        Hint::ImportUpdate => " and import it with `ois update import`".into(),
        Hint::ListDps => ": see `ois dp list`".into(),
        Hint::ChangeDp { .. } => ": change it with `ois dp set`".into(),
        // A NAL path is awkward to quote in a shell; the admin has it at hand.
        Hint::DisableMaintenanceMode { .. } => {
            "; disable maintenance mode first (`ois dp set-maintenance-mode NALPATH 0`)".into()
        }
        Hint::InitSite { root } => {
            format!(
                ": create one with `ois --site {} site init`",
                root.display()
            )
        }
        Hint::NewSite => " (`ois --site DIR site init`)".into(),
    }
}
