//! `ois media`: installation media (a folder or ISO with sources/install.wim, boot.wim and
//! Setup's files) and Setup Dynamic Updates.

use std::path::PathBuf;

use clap::Subcommand;

use super::commands::{print_outcome, CliError};
use super::render::{self, bytes, opt};
use super::UpdateSelection;
use ois::commands::{self, MediaServiceOptions, MediaServiced};
use ois::servicing::{RunStatus, ServiceOptions};
use ois::site::Site;

#[derive(Subcommand, Debug)]
pub enum MediaCommand {
    /// Register installation media: a folder (registered where it is) or an ISO (extracted
    /// into <site>/Media/NAME). Registers sources/install.wim (os-image NAME-install) and
    /// sources/boot.wim (boot-image NAME-boot), and records every file with its SHA-256
    Import {
        /// The media folder or ISO file
        source: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List registered media
    List {
        #[arg(long)]
        json: bool,
    },
    /// A media's images, Setup Dynamic Updates, ISO and recorded files
    Show {
        media: String,
        #[arg(long)]
        json: bool,
    },
    /// Send the media's boot.wim and install.wim to distribution points, as `ois image
    /// distribute` sends an image
    Distribute {
        media: String,
        /// Distribution points (NAL paths); they become assigned to the media's images.
        /// Default: every DP that holds them or is assigned to them
        #[arg(long = "dp", value_name = "NALPATH")]
        dps: Vec<String>,
        /// Transfers at once
        #[arg(long, default_value_t = ois::distribution::DEFAULT_JOBS)]
        jobs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Forget a media and its two images (the files stay)
    Remove { media: String },
    /// Import a Setup Dynamic Update CAB (Setup's own files, expanded into sources/)
    ImportSetupUpdate {
        cab: PathBuf,
        /// Its id [default: the KB number in the file name]
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the Setup Dynamic Updates of the site
    SetupUpdates {
        #[arg(long)]
        json: bool,
    },
    /// Service the media in one run: boot.wim and install.wim (each takes the updates that
    /// apply to it), Setup Dynamic Updates into sources/, then a new media folder and a
    /// bootable ISO; the original is replaced only once the new media is complete and verified
    Service {
        media: String,
        #[command(flatten)]
        selection: UpdateSelection,
        /// A Setup Dynamic Update to expand into sources/ (repeat, or comma separated)
        #[arg(long = "setup-update", value_delimiter = ',')]
        setup_updates: Vec<String>,
        /// Where to write the ISO [default: <site>/Media/NAME.iso]
        #[arg(long)]
        iso: Option<PathBuf>,
        /// Skip an update that fails and go on with the others
        #[arg(long)]
        continue_on_error: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(site: &Site, cmd: MediaCommand) -> Result<u8, CliError> {
    match cmd {
        MediaCommand::Import { source, name, json } => {
            let view = commands::import_media(site, &source, &name)?;
            if json {
                render::json(&view);
            } else {
                println!(
                    "Registered media {} ({}): {} files; install.wim as image {}{}",
                    view.media.name,
                    view.media.path.display(),
                    view.files.len(),
                    view.install_image,
                    view.boot_image
                        .as_ref()
                        .map(|b| format!(", boot.wim as image {b}"))
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
        MediaCommand::List { json } => {
            let list = commands::list_media(site)?;
            if json {
                render::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.name.clone(),
                            m.path.display().to_string(),
                            opt(&m.serviced_at),
                            m.iso_path
                                .as_ref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                render::table(&["ID", "NAME", "PATH", "SERVICED", "ISO"], &rows);
            }
            Ok(0)
        }
        MediaCommand::Show { media, json } => {
            let view = commands::show_media(site, &media)?;
            if json {
                render::json(&view);
            } else {
                println!("Media {} ({})", view.media.name, view.media.path.display());
                println!("  imported from:  {}", view.media.imported_from);
                println!("  install.wim:    image {}", view.install_image);
                println!("  boot.wim:       {}", opt(&view.boot_image));
                println!("  setup updates:  {}", view.setup_updates.join(", "));
                if let Some(iso) = &view.media.iso_path {
                    println!(
                        "  ISO:            {} ({}, SHA-256 {})",
                        iso.display(),
                        bytes(view.media.iso_size.unwrap_or(0)),
                        opt(&view.media.iso_sha256)
                    );
                }
                println!("  files:          {}", view.files.len());
            }
            Ok(0)
        }
        MediaCommand::Distribute {
            media,
            dps,
            jobs,
            json,
        } => {
            let sent = commands::distribute_media(site, &media, &dps, jobs)?;
            let outcomes: Vec<_> = sent.into_iter().flat_map(|d| d.outcomes).collect();
            if outcomes.is_empty() {
                return Err(CliError::Usage(format!(
                    "media {media} is on no distribution point and assigned to none: name one with --dp NALPATH"
                )));
            }
            super::dp::print_outcomes(&outcomes, json)
        }
        MediaCommand::Remove { media } => {
            let m = commands::remove_media(site, &media)?;
            println!(
                "Removed media {} and its images from the site; {} was left in place",
                m.name,
                m.path.display()
            );
            Ok(0)
        }
        MediaCommand::ImportSetupUpdate { cab, id, json } => {
            let u = commands::import_setup_update(site, &cab, id.as_deref())?;
            if json {
                render::json(&u);
            } else {
                println!(
                    "Imported Setup Dynamic Update {} ({}, {} files)",
                    u.id, u.file_name, u.files
                );
            }
            Ok(0)
        }
        MediaCommand::SetupUpdates { json } => {
            let list = commands::list_setup_updates(site)?;
            if json {
                render::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.clone(),
                            u.file_name.clone(),
                            u.files.to_string(),
                            bytes(u.size),
                        ]
                    })
                    .collect();
                render::table(&["ID", "FILE", "FILES", "SIZE"], &rows);
            }
            Ok(0)
        }
        MediaCommand::Service {
            media,
            selection,
            setup_updates,
            iso,
            continue_on_error,
            json,
        } => {
            let options = MediaServiceOptions {
                service: ServiceOptions {
                    selection: selection.selection(),
                    target: selection.target,
                    continue_on_error,
                    jobs: 1,
                    // Ctrl-C or SIGTERM cancels cleanly: every run rolls back, the original
                    // media stays.
                    cancel: super::schedule::stop_on_signals()?,
                },
                setup_updates,
                iso,
            };
            let done = commands::service_media(site, &media, &options, &|_, _| {})?;
            if json {
                render::json(&done);
            } else {
                print_serviced(&done);
            }
            Ok(if done.status == RunStatus::Successful {
                0
            } else {
                1
            })
        }
    }
}

fn print_serviced(done: &MediaServiced) {
    println!("Media {}: {}", done.media, done.status.as_str());
    for o in &done.images {
        print_outcome(o);
    }
    if !done.setup_updates.is_empty() {
        println!(
            "  setup updates: {} ({} files into sources)",
            done.setup_updates.join(", "),
            done.setup_files.len()
        );
    }
    if let Some(iso) = &done.iso {
        let boot: Vec<String> = iso
            .boot
            .iter()
            .map(|b| format!("{} {}", b.platform, b.path))
            .collect();
        println!(
            "  ISO: {} ({}, {:.1} s; boots {})",
            iso.path.display(),
            bytes(iso.size),
            iso.seconds,
            boot.join(", ")
        );
    }
    if let Some(e) = &done.error {
        println!("  {e}");
    }
}
