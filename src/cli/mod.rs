//! Command-line interface: argument definitions, and rendering of what the engine returns.

mod bench;
mod commands;
mod quickstart;
mod render;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use commands::run;

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
    /// Create a sample image and packages on the site, service it, and show what changed
    Quickstart,
    /// Benchmarks: generate realistic input, compare ois with other ways to service
    #[command(subcommand)]
    Bench(bench::BenchCommand),
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
}

#[derive(Args, Debug, Clone)]
pub struct UpdateFilter {
    /// Match text in the id, title or classification
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
    /// Import update packages (directories or CAB files) into the content library
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List the updates in the content library
    List(UpdateFilter),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Register a WIM file and read its indexes and installed updates
    Import {
        wim: PathBuf,
        /// os-image or os-upgrade-package
        #[arg(long, default_value = "os-image")]
        kind: String,
        /// Name in the catalog [default: the file name]
        #[arg(long)]
        name: Option<String>,
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
        #[arg(long)]
        json: bool,
    },
    /// Remove an image from the catalog, with its history (the WIM file is kept)
    Remove { image: String },
    /// Updates that apply to the image and are not installed yet
    Applicable {
        image: String,
        #[command(flatten)]
        filter: UpdateFilter,
    },
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Images (id or name)
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Updates to apply, comma separated
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "all_applicable",
        required_unless_present = "all_applicable"
    )]
    pub updates: Vec<String>,
    /// Apply every applicable update
    #[arg(long)]
    pub all_applicable: bool,
    /// Skip an update that fails and go on with the others
    #[arg(long)]
    pub continue_on_error: bool,
    /// Images serviced at once [default: from CPU count and free memory]
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long)]
    pub json: bool,
}
