//! Command-line interface: argument definitions, and rendering of what the engine returns.

mod bench;
mod changes;
mod commands;
mod dp;
mod hint;
mod media;
mod quickstart;
mod render;
mod schedule;
mod serve;
mod service_host;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use commands::{error_message, run};

#[derive(Parser, Debug)]
#[command(
    name = "ois",
    version,
    about = "Offline servicing of Windows images (WIM files)"
)]
pub struct Cli {
    /// Site directory [default: $OIS_SITE, else ./ois-site]
    #[arg(long, global = true, env = "OIS_SITE", default_value = "ois-site")]
    pub site: PathBuf,
    /// More output on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or inspect the site
    #[command(subcommand)]
    Site(SiteCommand),
    /// Update packages in the content library
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Images in the catalog
    #[command(subcommand)]
    Image(ImageCommand),
    /// Apply updates to images now
    Service(ServiceArgs),
    /// Run scheduled servicing
    #[command(subcommand)]
    Scheduler(SchedulerCommand),
    /// Distribution points: NAL paths, maintenance mode, content validation
    #[command(subcommand)]
    Dp(dp::DpCommand),
    /// What clients are told about content
    #[command(subcommand)]
    Content(dp::ContentCommand),
    /// Create a sample image and packages on the site, service it, and show what changed
    Quickstart,
    /// Benchmarks: generate realistic input, compare ois with other ways to service
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The site server: JSON API, AdminService routes, web console (and the scheduler)
    Serve(serve::ServeArgs),
    /// Installation media: import a folder or ISO, service it into a new folder and ISO
    #[command(subcommand)]
    Media(media::MediaCommand),
    /// Run the scheduler or the site server as a Windows service (Windows hosts)
    #[command(subcommand)]
    ServiceHost(service_host::ServiceHostCommand),
}

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Create a site: site.toml, the site database, the content library and logs/
    Init {
        /// `auto` (the site's drive) or a mount point / directory for ConfigMgr_OfflineImageServicing
        #[arg(long, default_value = "auto")]
        servicing_drive: String,
    },
    /// Show the site's configuration and paths
    Show {
        #[arg(long)]
        json: bool,
    },
    /// List the machine's drives with free space; mark the one servicing uses
    Drives {
        #[arg(long)]
        json: bool,
    },
    /// Accounts of the site server (`ois serve`)
    #[command(subcommand)]
    User(serve::UserCommand),
}

#[derive(Args, Debug, Clone)]
pub struct UpdateFilter {
    /// Match text in the id, title or classification (of a Windows package: also its
    /// identity, kind, release type and file names)
    #[arg(long)]
    pub filter: Option<String>,
    /// x86, x64, arm64 or all
    #[arg(long, default_value = "all")]
    pub arch: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Import update packages into the content library: ois packages (directories or CABs
    /// with update.toml), Windows .msu files, CBS .cab files (with their .psf), or a folder of
    /// .msu/.cab files
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List the updates in the content library: ois packages (kind file) and Windows
    /// packages (kind cbs)
    List(UpdateFilter),
    /// Everything recorded about an update: by update id, KB or CBS package identity
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Register a WIM file and read its indexes and installed updates
    Import {
        wim: PathBuf,
        /// os-image, os-upgrade-package or boot-image (boot.wim: takes WinPE updates)
        #[arg(long, default_value = "os-image")]
        kind: String,
        /// Name in the catalog [default: the file name]
        #[arg(long)]
        name: Option<String>,
        /// Another WIM inside the image to register as a nested image, by its path in the
        /// image (repeatable); Windows/System32/Recovery/Winre.wim is always looked for
        #[arg(long = "nested", value_name = "PATH")]
        nested: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List registered images
    List {
        #[arg(long)]
        json: bool,
    },
    /// Indexes, installed updates and servicing history of an image
    Show {
        image: String,
        /// List every Windows package of each index (feature and language packages too), not
        /// only the update packages
        #[arg(long)]
        all_packages: bool,
        #[arg(long)]
        json: bool,
    },
    /// What a servicing run changed in each index: files added, replaced, deleted, renamed,
    /// and registry hives edited, with their sizes
    Changes(changes::ChangesArgs),
    /// Remove an image from the catalog, with its history (the WIM file is kept)
    Remove { image: String },
    /// Send the image's current version to distribution points
    Distribute(dp::DistributeArgs),
    /// Updates that apply to the image and are not installed yet
    Applicable {
        image: String,
        #[command(flatten)]
        filter: UpdateFilter,
    },
    /// Schedule servicing of the image (replaces its schedule)
    Schedule(ScheduleArgs),
    /// Remove the image's schedule
    Unschedule { image: String },
    /// Cancel the run in progress (from any process), or the pending scheduled run
    Cancel {
        image: String,
        /// Seconds to wait for the run to stop
        #[arg(long, default_value_t = 60)]
        wait: u64,
        #[arg(long)]
        json: bool,
    },
    /// Take the image out of provisioning mode after a run that died: releases the lease,
    /// removes the stage and partial output, checks the original, ends the run as Failed
    SetProvisioningMode {
        image: String,
        /// Only `false` (an image enters provisioning mode only when a run starts)
        #[arg(action = clap::ArgAction::Set)]
        enabled: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["now", "at", "cron"])))]
pub struct ScheduleArgs {
    pub image: String,
    #[command(flatten)]
    pub selection: UpdateSelection,
    /// As soon as the scheduler runs
    #[arg(long)]
    pub now: bool,
    /// Once, at RFC 3339 or local `YYYY-MM-DD HH:MM`
    #[arg(long)]
    pub at: Option<String>,
    /// Recurring: `sec min hour day-of-month month day-of-week`, or the classic five fields
    #[arg(long)]
    pub cron: Option<String>,
    /// Skip an update that fails and go on with the others
    #[arg(long)]
    pub continue_on_error: bool,
    /// Send the serviced image to the distribution points after a successful run
    #[arg(long)]
    pub update_dps: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SchedulerCommand {
    /// Run due servicing until SIGINT/SIGTERM (or, with --once, what is due now)
    Run {
        /// Do what is due now, then exit (for cron-driven setups)
        #[arg(long)]
        once: bool,
        /// Images serviced at once [default: from CPU count and free memory]
        #[arg(long)]
        jobs: Option<usize>,
        /// One JSON object per event on stdout
        #[arg(long)]
        json: bool,
    },
}

/// Which updates a run takes, for `service` and `image schedule`.
#[derive(Args, Debug)]
pub struct UpdateSelection {
    /// Updates to apply, comma separated
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "all_applicable",
        required_unless_present = "all_applicable"
    )]
    pub updates: Vec<String>,
    /// Apply every update applicable when the run starts (scheduled: the monthly patch run)
    #[arg(long)]
    pub all_applicable: bool,
    /// With --all-applicable: take only `file` (ois packages, which any host installs) or
    /// only `cbs` (Windows packages) updates; default all
    #[arg(long, requires = "all_applicable", value_parser = parse_kind)]
    pub kind: Option<ois::servicing::KindFilter>,
    /// Which levels to service: `all` (each update where its target says: the image's own
    /// indexes and its nested Winre.wim), `os` (the image's own indexes only) or `winre`
    /// (the nested recovery images only)
    #[arg(long, default_value = "all", value_parser = parse_target)]
    pub target: ois::servicing::TargetFilter,
}

fn parse_target(s: &str) -> Result<ois::servicing::TargetFilter, String> {
    s.parse()
}

fn parse_kind(s: &str) -> Result<ois::servicing::KindFilter, String> {
    s.parse()
}

impl UpdateSelection {
    pub fn selection(&self) -> ois::servicing::Selection {
        if self.all_applicable {
            ois::servicing::Selection::AllApplicable(self.kind.unwrap_or_default())
        } else {
            ois::servicing::Selection::Updates(
                self.updates.iter().map(|u| u.as_str().into()).collect(),
            )
        }
    }
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Images (id or name)
    #[arg(required = true)]
    pub images: Vec<String>,
    #[command(flatten)]
    pub selection: UpdateSelection,
    /// Skip an update that fails and go on with the others
    #[arg(long)]
    pub continue_on_error: bool,
    /// Send each successfully serviced image to the distribution points that hold it or are
    /// assigned to it
    #[arg(long)]
    pub update_dps: bool,
    /// Images serviced at once [default: from CPU count and free memory]
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long)]
    pub json: bool,
}
