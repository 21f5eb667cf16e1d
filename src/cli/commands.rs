//! What each command does: call the engine, render the answer.

use std::collections::HashMap;
use std::path::Path;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use super::render::{self, bytes, opt};
use super::{
    Cli, Command, ImageCommand, SchedulerCommand, ServiceArgs, SiteCommand, UpdateCommand,
    UpdateFilter,
};
use ois::commands::{UpdateQuery, UpdateSummary};
use ois::image::{self, ImageKind};
use ois::library::cbs::CbsPackage;
use ois::library::{self, ImportStatus};
use ois::servicing::{self, ImageOutcome, RunEvent, RunStatus, ServiceOptions};
use ois::site::{self, ServicingDrive, Site, SiteError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Command(Box<ois::commands::CommandError>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Other(String),
}

impl From<ois::commands::CommandError> for CliError {
    fn from(e: ois::commands::CommandError) -> Self {
        CliError::Command(Box::new(e))
    }
}

impl CliError {
    /// What to do about it, from the engine module that failed.
    pub fn hint(&self) -> Option<ois::hint::Hint> {
        match self {
            CliError::Site(e) => e.hint(),
            CliError::Command(e) => e.hint(),
            CliError::Usage(_) | CliError::Other(_) => None,
        }
    }
}

/// The error as the CLI reports it: the message, then the command that is the next step.
pub fn error_message(e: &CliError) -> String {
    super::hint::with_hint(&e.to_string(), e.hint().as_ref())
}

/// Runs a command; the returned code is the process exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    if matches!(cli.command, Command::Quickstart) && !cli.site.join(site::CONFIG_FILE).is_file() {
        println!("Creating site {}", cli.site.display());
        Site::init(&cli.site, ServicingDrive::Auto, ois::SCHEMA)?;
    }
    // A site whose configuration does not load logs nowhere; its command reports the error.
    let logs = Site::open(&cli.site, ois::SCHEMA)
        .ok()
        .map(|s| (s.logs_dir(), s.config().log_max_bytes()));
    ois::log::init(
        logs.as_ref().map(|(dir, max_bytes)| ois::log::LogFiles {
            dir,
            max_bytes: *max_bytes,
        }),
        cli.verbose,
        cli.quiet,
    );
    match cli.command {
        Command::Site(SiteCommand::Init { servicing_drive }) => {
            site_init(&cli.site, &servicing_drive)
        }
        Command::Site(SiteCommand::Show { json }) => {
            site_show(&Site::open(&cli.site, ois::SCHEMA)?, json)
        }
        Command::Site(SiteCommand::Drives { json }) => {
            site_drives(&Site::open(&cli.site, ois::SCHEMA)?, json)
        }
        Command::Update(UpdateCommand::Import { paths, json }) => {
            update_import(&Site::open(&cli.site, ois::SCHEMA)?, &paths, json)
        }
        Command::Update(UpdateCommand::List(filter)) => {
            update_list(&Site::open(&cli.site, ois::SCHEMA)?, &filter)
        }
        Command::Update(UpdateCommand::Show { id, json }) => {
            update_show(&Site::open(&cli.site, ois::SCHEMA)?, &id, json)
        }
        Command::Image(ImageCommand::Import {
            wim,
            kind,
            name,
            nested,
            json,
        }) => image_import(
            &Site::open(&cli.site, ois::SCHEMA)?,
            &wim,
            &kind,
            name.as_deref(),
            &nested,
            json,
        ),
        Command::Image(ImageCommand::List { json }) => {
            image_list(&Site::open(&cli.site, ois::SCHEMA)?, json)
        }
        Command::Image(ImageCommand::Show {
            image,
            all_packages,
            json,
        }) => image_show(
            &Site::open(&cli.site, ois::SCHEMA)?,
            &image,
            all_packages,
            json,
        ),
        Command::Image(ImageCommand::Changes(args)) => {
            super::changes::show(&Site::open(&cli.site, ois::SCHEMA)?, &args)
        }
        Command::Image(ImageCommand::Remove { image }) => {
            let img = ois::commands::remove_image(&Site::open(&cli.site, ois::SCHEMA)?, &image)?;
            println!(
                "Removed image {} from the catalog; {} is kept",
                img.name,
                img.path.display()
            );
            Ok(0)
        }
        Command::Image(ImageCommand::Applicable { image, filter }) => {
            image_applicable(&Site::open(&cli.site, ois::SCHEMA)?, &image, &filter)
        }
        Command::Image(ImageCommand::Schedule(args)) => {
            super::schedule::schedule(&Site::open(&cli.site, ois::SCHEMA)?, &args)
        }
        Command::Image(ImageCommand::Unschedule { image }) => {
            super::schedule::unschedule(&Site::open(&cli.site, ois::SCHEMA)?, &image)
        }
        Command::Image(ImageCommand::Cancel { image, wait, json }) => {
            super::schedule::cancel(&Site::open(&cli.site, ois::SCHEMA)?, &image, wait, json)
        }
        Command::Image(ImageCommand::SetProvisioningMode {
            image,
            enabled,
            json,
        }) => super::schedule::set_provisioning_mode(
            &Site::open(&cli.site, ois::SCHEMA)?,
            &image,
            enabled,
            json,
        ),
        Command::Scheduler(SchedulerCommand::Run { once, jobs, json }) => {
            super::schedule::scheduler_run(&Site::open(&cli.site, ois::SCHEMA)?, once, jobs, json)
        }
        Command::Image(ImageCommand::Distribute(args)) => {
            super::dp::distribute(&Site::open(&cli.site, ois::SCHEMA)?, &args)
        }
        Command::Service(args) => service(&Site::open(&cli.site, ois::SCHEMA)?, &args),
        Command::Dp(super::dp::DpCommand::Agent(args)) => super::dp::agent(args),
        Command::Dp(cmd) => super::dp::run(&Site::open(&cli.site, ois::SCHEMA)?, cmd),
        Command::Media(cmd) => super::media::run(&Site::open(&cli.site, ois::SCHEMA)?, cmd),
        Command::Content(cmd) => super::dp::content(&Site::open(&cli.site, ois::SCHEMA)?, cmd),
        Command::Bench(cmd) => super::bench::run(cmd),
        Command::Serve(args) => super::serve::serve(&cli.site, &args),
        Command::Site(SiteCommand::User(cmd)) => {
            super::serve::user(&Site::open(&cli.site, ois::SCHEMA)?, cmd)
        }
        Command::Quickstart => super::quickstart::run(&cli.site),
        Command::ServiceHost(cmd) => super::service_host::run(&cli.site, cmd),
    }
}

fn site_init(dir: &Path, drive: &str) -> Result<u8, CliError> {
    let drive: ServicingDrive = drive.parse().map_err(CliError::Usage)?;
    let site = Site::init(dir, drive, ois::SCHEMA)?;
    ois::log::init(
        Some(ois::log::LogFiles {
            dir: &site.logs_dir(),
            max_bytes: site.config().log_max_bytes(),
        }),
        0,
        false,
    );
    tracing::info!("site created at {}", site.root().display());
    println!("Created site {}", site.root().display());
    println!(
        "  configuration     {}",
        site.root().join(site::CONFIG_FILE).display()
    );
    println!(
        "  site database     {}",
        site.root().join(site::DATABASE_FILE).display()
    );
    println!("  content library   {}", site.library_dir().display());
    println!("  logs              {}", site.logs_dir().display());
    println!("  servicing folder  {}", site.staging_root().display());
    Ok(0)
}

fn site_show(site: &Site, json: bool) -> Result<u8, CliError> {
    let c = site.config();
    if json {
        render::json(&json!({
            "root": site.root(), "servicing_drive": c.servicing_drive.to_string(),
            "staging_folder": site.staging_root(), "integrity_table": c.integrity_table,
            "metadata_memory_mib": c.metadata_memory_mib,
            "remove_superseded_updates": c.remove_superseded_updates,
            "content_library": site.library_dir(), "logs": site.logs_dir(),
            "wimlib": ois::wim::version(),
        }));
    } else {
        println!("Site              {}", site.root().display());
        println!("Servicing drive   {}", c.servicing_drive);
        println!("Servicing folder  {}", site.staging_root().display());
        println!("Content library   {}", site.library_dir().display());
        println!("Logs              {}", site.logs_dir().display());
        println!(
            "Integrity table   {}",
            if c.integrity_table { "yes" } else { "no" }
        );
        println!("Metadata memory   {} MiB", c.metadata_memory_mib);
        println!(
            "Remove superseded {}",
            if c.remove_superseded_updates {
                "yes (DISM /StartComponentCleanup /ResetBase after Windows packages)"
            } else {
                "no"
            }
        );
        println!("wimlib            {}", ois::wim::version());
    }
    Ok(0)
}

fn site_drives(site: &Site, json: bool) -> Result<u8, CliError> {
    let staging = site.staging_root();
    let drives = site::list_drives_with(Some(&staging));
    let used = site::drive_of(&drives, &staging).map(|d| d.mount_point.clone());
    if json {
        let rows: Vec<_> = drives
            .iter()
            .map(|d| json!({"mount_point": d.mount_point, "file_system": d.file_system, "total_bytes": d.total_bytes,
                "free_bytes": d.free_bytes, "servicing": Some(&d.mount_point) == used.as_ref()}))
            .collect();
        render::json(&rows);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = drives
        .iter()
        .map(|d| {
            vec![
                if Some(&d.mount_point) == used.as_ref() {
                    "*".into()
                } else {
                    String::new()
                },
                d.mount_point.display().to_string(),
                d.file_system.clone(),
                bytes(d.total_bytes),
                bytes(d.free_bytes),
            ]
        })
        .collect();
    render::table(&["", "Drive", "File system", "Size", "Free"], &rows);
    println!(
        "\n* servicing drive ({} = {})",
        site.config().servicing_drive,
        staging.display()
    );
    Ok(0)
}

fn update_import(site: &Site, paths: &[std::path::PathBuf], json: bool) -> Result<u8, CliError> {
    let outcomes = ois::commands::import_updates(site, paths)?;
    if json {
        render::json(&outcomes);
    } else {
        for o in &outcomes {
            match o.status {
                ImportStatus::Imported => println!(
                    "Imported {}  {} ({} files, {})",
                    o.id,
                    o.title,
                    o.files,
                    bytes(o.bytes)
                ),
                ImportStatus::AlreadyPresent => {
                    println!("Already in the content library: {}  {}", o.id, o.title)
                }
            }
        }
    }
    Ok(0)
}

fn update_query(f: &UpdateFilter) -> Result<UpdateQuery, CliError> {
    Ok(UpdateQuery {
        filter: f.filter.clone(),
        architecture: f
            .arch
            .parse()
            .map_err(|e| CliError::Usage(format!("--arch {e}")))?,
    })
}

/// File-level updates and Windows packages side by side.
fn print_updates(updates: &[UpdateSummary], json: bool) {
    if json {
        render::json_value(&updates);
        return;
    }
    let rows: Vec<Vec<String>> = updates
        .iter()
        .map(|u| {
            vec![
                u.id().to_string(),
                u.kind().as_str().into(),
                u.architecture(),
                opt(&u.classification()),
                u.title().to_string(),
            ]
        })
        .collect();
    render::table(&["Id", "Kind", "Arch", "Classification", "Title"], &rows);
}

fn update_list(site: &Site, f: &UpdateFilter) -> Result<u8, CliError> {
    let updates = ois::commands::list_updates(site, &update_query(f)?)?;
    print_updates(&updates, f.json);
    Ok(0)
}

/// `update show`: every update the key names (an update id, a KB, an identity).
fn update_show(site: &Site, key: &str, json: bool) -> Result<u8, CliError> {
    let updates = ois::commands::show_update(site, key)?;
    if json {
        render::json_value(&updates);
        return Ok(0);
    }
    for (i, u) in updates.iter().enumerate() {
        if i > 0 {
            println!();
        }
        match u {
            UpdateSummary::File { update, .. } => print_file_update(update),
            UpdateSummary::Windows { package, .. } => print_windows_package(package),
        }
    }
    Ok(0)
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn print_file_update(u: &library::Update) {
    let m = &u.manifest;
    println!("Id                {}", m.id);
    println!("Kind              file");
    println!("Title             {}", m.title);
    println!("Classification    {}", opt(&m.classification));
    println!("Architecture      {}", m.architecture);
    println!("Supersedes        {}", list_or_dash(&m.supersedes));
    println!("Requires          {}", list_or_dash(&m.requires));
    let a = &m.applies_to;
    println!(
        "Applies to        builds {}..{}, editions {}",
        a.min_build.map_or("-".into(), |b| b.to_string()),
        a.max_build.map_or("-".into(), |b| b.to_string()),
        list_or_dash(&a.editions)
    );
    println!("Size              {}", bytes(u.size_bytes));
    println!("Source            {}", u.source);
    println!("Imported          {}", u.imported_at);
    println!("Changes");
    for c in &m.changes {
        match c {
            library::Change::Add { source, target } => println!("  add     {source} -> {target}"),
            library::Change::Delete { path } => println!("  delete  {path}"),
            library::Change::Rename { from, to, replace } => println!(
                "  rename  {from} -> {to}{}",
                if *replace { " (replace)" } else { "" }
            ),
        }
    }
    if !m.registry.is_empty() {
        println!("Registry changes");
        for entry in &m.registry {
            match entry {
                library::manifest::RegistryEntry::Change(op) => print_registry_op(op, "  "),
                library::manifest::RegistryEntry::Import { source, ops } => {
                    println!("  import  {source} ({} change(s))", ops.len());
                    for op in ops {
                        print_registry_op(op, "    ");
                    }
                }
            }
        }
    }
    println!("Files");
    for f in &u.files {
        println!("  {}  {}  {}", f.sha256, bytes(f.size), f.path);
    }
}

fn print_registry_op(op: &ois::registry::RegistryOp, indent: &str) {
    use ois::registry::RegistryOp::*;
    let at = format!("{}\\{}", op.hive(), op.key());
    match op {
        SetValue { name, value, .. } => {
            let name = if name.is_empty() { "@" } else { name.as_str() };
            println!("{indent}set     {at} {name:?} = {}", value.display());
        }
        DeleteValue { name, .. } => println!("{indent}delete  {at} value {name:?}"),
        DeleteKey { .. } => println!("{indent}delete  {at} (key)"),
        CreateKey { .. } => println!("{indent}create  {at}"),
    }
}

fn print_windows_package(p: &CbsPackage) {
    let i = &p.identity_parts;
    println!("Id                {}", p.id());
    println!("Kind              cbs ({})", p.kind.label());
    println!("Identity          {}", p.identity);
    println!("  name            {}", i.name);
    println!("  public key      {}", i.public_key_token);
    println!("  architecture    {}", i.processor_architecture);
    println!(
        "  language        {}",
        if i.language.is_empty() {
            "neutral"
        } else {
            &i.language
        }
    );
    println!("  version         {}", i.version);
    println!("KB                {}", opt(&p.kb));
    println!("Release type      {}", opt(&p.release_type));
    println!("Classification    {}", opt(&p.classification));
    println!("Architecture      {}", p.architecture);
    println!("Restart           {}", opt(&p.restart));
    println!("Editions          {}", list_or_dash(&p.editions));
    for (k, v) in &p.custom_information {
        println!("Custom info       {k} = {v}");
    }
    println!(
        "Express (PSF)     {}",
        match (&p.psf, p.express) {
            (Some(psf), _) => format!("{} ({}, {})", psf.name, psf.location, bytes(psf.size)),
            (None, true) => "yes, payload missing".into(),
            (None, false) => "no".into(),
        }
    );
    println!("Container         {}", p.container.as_str());
    println!("Source            {}", p.source);
    println!("SHA-256           {}", p.source_sha256);
    println!("Member            {}", opt(&p.member));
    println!("Came with         {}", list_or_dash(&p.bundled_with));
    println!("Entries           {}", p.entries);
    println!("Imported          {}", p.imported_at);
    println!("Applies to (parents)");
    if p.parents.is_empty() {
        println!("  (none declared)");
    }
    for parent in &p.parents {
        println!(
            "  {}  build {}, revision {}, integrate {}, disposition {}",
            parent.identity,
            opt(&parent.build_compare),
            opt(&parent.revision_compare),
            opt(&parent.integrate),
            opt(&parent.disposition)
        );
    }
    if !p.properties.is_empty() {
        println!("MSU properties");
        for (k, v) in &p.properties {
            println!("  {k} = {v}");
        }
    }
    println!("Files");
    for f in &p.files {
        println!("  {}  {}  {}  {}", f.role, f.sha256, bytes(f.size), f.name);
    }
}

fn image_import(
    site: &Site,
    wim: &Path,
    kind: &str,
    name: Option<&str>,
    nested: &[String],
    json: bool,
) -> Result<u8, CliError> {
    let kind: ImageKind = kind
        .parse()
        .map_err(|e| CliError::Usage(format!("--kind {e}")))?;
    let imported = ois::commands::import_image(site, wim, kind, name, nested)?;
    if json {
        render::json_value(&imported);
    } else {
        let img = &imported.image;
        println!(
            "Registered image {} (id {}) from {}",
            img.name,
            img.id,
            img.path.display()
        );
        print_indexes(&imported.indexes);
        print_nested(&imported.nested);
        let p = &imported.compressed_payloads;
        if !p.built.is_empty() {
            println!(
                "Compressed the payloads of {} update(s) for {} ahead of its first run: {}",
                p.built.len(),
                p.compression,
                p.built.join(", ")
            );
        }
        if !p.failed.is_empty() {
            println!(
                "Could not compress ahead (its first run will): {}",
                p.failed.join(", ")
            );
        }
    }
    Ok(0)
}

/// The nested images (Winre.wim) of an image: where, which parent indexes, their indexes and
/// installed updates, or why one cannot be serviced.
fn print_nested(nested: &[image::NestedImage]) {
    for n in nested {
        let parents: Vec<String> = n.parent_indexes().iter().map(u32::to_string).collect();
        println!(
            "\nNested image {} (id {}) in index(es) {}: {}, SHA-1 {}",
            n.path,
            n.id,
            parents.join(", "),
            bytes(n.size_bytes),
            n.sha1
        );
        match &n.error {
            Some(e) => println!("  cannot be serviced: {e}"),
            None => print_indexes(&n.indexes),
        }
    }
}

fn print_indexes(indexes: &[image::IndexDetail]) {
    let rows: Vec<Vec<String>> = indexes
        .iter()
        .map(|i| {
            let info = &i.info;
            let installed: Vec<&str> = i.installed.iter().map(|u| u.id.as_str()).collect();
            vec![
                info.index.to_string(),
                info.name.clone(),
                info.architecture.map_or("-".into(), |a| a.to_string()),
                opt(&info.version.clone().or(info.build.map(|b| b.to_string()))),
                opt(&info.display_version),
                opt(&info.edition),
                if installed.is_empty() {
                    "-".into()
                } else {
                    installed.join(" ")
                },
            ]
        })
        .collect();
    render::table(
        &[
            "Index",
            "Name",
            "Arch",
            "Version",
            "Display version",
            "Edition",
            "Installed updates",
        ],
        &rows,
    );
}

/// Update packages (`Package_for_*`) of each index with their CBS state; every package with
/// `all`. A real index has a thousand and more feature and language packages.
fn print_windows_packages(indexes: &[image::IndexDetail], all: bool) {
    for i in indexes {
        println!(
            "\nWindows packages of index {} (read from {})",
            i.info.index,
            i.info
                .packages_from
                .as_deref()
                .unwrap_or("the WIM XML only: registered before ois read packages; import the image again to read them")
        );
        let shown: Vec<&image::InstalledPackage> = i
            .packages
            .iter()
            .filter(|p| all || p.identity.to_ascii_lowercase().starts_with("package_for_"))
            .collect();
        if i.packages.is_empty() {
            println!("  (none)");
            continue;
        }
        if !shown.is_empty() {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|p| vec![p.identity.clone(), p.state_label(), p.source.clone()])
                .collect();
            render::table(&["Package", "State", "Source"], &rows);
        }
        let others = i.packages.len() - shown.len();
        if others > 0 {
            println!("  and {others} other package(s) (feature, language, edition): see --all-packages or --json");
        }
    }
}

fn image_list(site: &Site, json: bool) -> Result<u8, CliError> {
    let images = ois::commands::list_images(site)?;
    if json {
        let listed: Vec<serde_json::Value> = images
            .iter()
            .map(|s| {
                let mut entry = serde_json::to_value(&s.image).unwrap_or_default();
                entry["scheduled_updates_date"] = json!(s.scheduled_updates_date);
                entry["scheduled_updates_status"] = json!(s.scheduled_updates_status);
                entry["provisioning_mode"] = json!(s.provisioning_mode);
                entry
            })
            .collect();
        render::json(&listed);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|s| {
            let img = &s.image;
            vec![
                img.id.to_string(),
                img.name.clone(),
                img.kind.as_str().to_string(),
                bytes(img.size_bytes),
                s.scheduled_updates_date
                    .as_deref()
                    .map_or("-".into(), super::schedule::local_time),
                s.scheduled_updates_status.as_str().to_string(),
                if s.provisioning_mode.is_some() {
                    "yes".into()
                } else {
                    "no".into()
                },
                img.path.display().to_string(),
            ]
        })
        .collect();
    render::table(
        &[
            "Id",
            "Name",
            "Kind",
            "Size",
            "Scheduled Updates Date",
            "Scheduled Updates Status",
            "Provisioning",
            "Path",
        ],
        &rows,
    );
    Ok(0)
}

fn image_show(site: &Site, key: &str, all_packages: bool, json: bool) -> Result<u8, CliError> {
    let view = ois::commands::image_view(site, key)?;
    if json {
        render::json(&view);
        return Ok(0);
    }
    let ois::commands::ImageView {
        image: img,
        scheduled_updates_date: next,
        scheduled_updates_status: status,
        servicing:
            ois::commands::ServicingView {
                schedule,
                will_apply,
                plan_error,
                plan_hint,
            },
        provisioning_mode: provisioning,
        indexes,
        nested,
        runs,
        distribution,
        ..
    } = view;
    let will_apply = match (will_apply, plan_error) {
        (_, Some(reason)) => Err(super::hint::with_hint(&reason, plan_hint.as_ref())),
        (ids, None) => Ok(ids.unwrap_or_default()),
    };
    let last = runs.first();
    println!("Image             {} (id {})", img.name, img.id);
    println!("Kind              {}", img.kind.as_str());
    println!("Path              {}", img.path.display());
    println!("Size              {}", bytes(img.size_bytes));
    println!("Compression       {}", img.compression);
    println!("SHA-256           {}", img.sha256);
    println!("Imported          {}", img.imported_at);
    println!("Last serviced     {}", opt(&img.serviced_at));
    match &provisioning {
        Some(p) => println!(
            "Provisioning mode yes, since {} (process {} on {})",
            p.since, p.owner_pid, p.owner_host
        ),
        None => println!("Provisioning mode no"),
    }
    println!(
        "Scheduled Updates Date    {}",
        next.as_deref()
            .map_or("-".into(), super::schedule::local_time)
    );
    println!("Scheduled Updates Status  {}", status.as_str());
    if let Some(r) = last {
        println!("Update Status (run {}, {})", r.id, r.status);
        if r.updates.is_empty() {
            println!("  {}", opt(&r.error));
        }
        for u in &r.updates {
            println!(
                "  {}  index {}  {}",
                u.update,
                u.index,
                update_result(u, "Installed")
            );
            print_registry_changes(&u.registry, "      ");
        }
        print_nested_results(&r.nested_updates, "  ", "Installed");
        if let Some(log) = &r.log_path {
            println!("  log: {log}");
        }
    }
    println!("Servicing");
    match &schedule {
        None => println!("  no schedule"),
        Some(s) => {
            println!(
                "  schedule       {} (next run {})",
                s.timing.describe(),
                s.next_run_at
                    .as_deref()
                    .map_or("-".into(), super::schedule::local_time)
            );
            println!(
                "  options        continue on error: {}, update distribution points: {}",
                s.continue_on_error, s.update_dps
            );
            match &will_apply {
                Ok(ids) if ids.is_empty() => println!("  will apply     nothing (up to date)"),
                Ok(ids) => println!("  will apply     {}", ids.join(", ")),
                Err(reason) => println!("  will apply     cannot plan: {reason}"),
            }
        }
    }
    println!();
    print_indexes(&indexes);
    print_nested(&nested);
    print_windows_packages(&indexes, all_packages);
    println!("\nServicing history");
    if runs.is_empty() {
        println!("  (none)");
    }
    for r in &runs {
        println!(
            "  run {}  {}  {}  {} -> {}{}",
            r.id,
            r.status,
            r.started_at,
            r.size_before.map_or("-".into(), bytes),
            r.size_after.map_or("-".into(), bytes),
            r.error
                .as_ref()
                .map_or(String::new(), |e| format!("  ({e})"))
        );
        for u in &r.updates {
            let result = update_result(u, "Applied");
            println!("      {}  index {}  {}", u.update, u.index, result);
            print_registry_changes(&u.registry, "          ");
        }
        print_nested_results(&r.nested_updates, "      ", "Applied");
    }
    println!("\nDistribution points");
    super::dp::print_distributions(&distribution, true);
    Ok(0)
}

/// A run's results on nested images, one line per update and nested index.
fn print_nested_results(results: &[servicing::NestedUpdateResult], indent: &str, ok: &str) {
    for u in results {
        let parents: Vec<String> = u.parent_indexes.iter().map(u32::to_string).collect();
        let result = if u.applied {
            ok.to_string()
        } else {
            format!("Failed: {}", u.error.clone().unwrap_or_default())
        };
        println!(
            "{indent}{}  nested {} index {} (in index(es) {})  {result}",
            u.update,
            u.path,
            u.index,
            parents.join(", ")
        );
    }
}

/// What an update's registry changes did on an index, one line each.
fn print_registry_changes(changes: &[ois::registry::Applied], indent: &str) {
    for c in changes {
        let value = c.value.as_deref().map_or(String::new(), |v| {
            if v.is_empty() {
                " (default value)".into()
            } else {
                format!(" value {v:?}")
            }
        });
        let data = match (&c.before, &c.after) {
            (Some(b), Some(a)) if b != a => format!(": {b} -> {a}"),
            (_, Some(a)) => format!(": {a}"),
            (Some(b), None) => format!(" (was {b})"),
            (None, None) => String::new(),
        };
        println!(
            "{indent}registry {} {}\\{}{value}{data}",
            c.action,
            c.hive.as_str(),
            c.key
        );
    }
}

fn image_applicable(site: &Site, key: &str, f: &UpdateFilter) -> Result<u8, CliError> {
    let updates = ois::commands::applicable_updates(site, key, &update_query(f)?)?;
    print_updates(&updates, f.json);
    Ok(0)
}

pub(super) fn progress_observer(
    names: &[String],
    enabled: bool,
) -> (MultiProgress, HashMap<String, ProgressBar>) {
    let multi = MultiProgress::new();
    if !enabled {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix:>20} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars = names
        .iter()
        .map(|n| {
            let bar = multi.add(
                ProgressBar::new(100)
                    .with_style(style.clone())
                    .with_prefix(n.clone()),
            );
            (n.clone(), bar)
        })
        .collect();
    (multi, bars)
}

/// Services `images` with progress bars on a terminal; with `update_dps`, each new version
/// then goes to the DPs.
pub(super) fn service_images(
    site: &Site,
    images: &[String],
    options: &ServiceOptions,
    update_dps: bool,
    show_progress: bool,
) -> Result<Vec<ois::commands::ServiceOutcome>, CliError> {
    let found = ois::commands::find_images(site, images)?;
    let names: Vec<String> = found.iter().map(|i| i.name.clone()).collect();
    let ids: Vec<image::ImageId> = found.iter().map(|i| i.id).collect();
    let (_multi, bars) = progress_observer(
        &names,
        show_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let observer = |name: &str, event: RunEvent| {
        let Some(bar) = bars.get(name) else { return };
        match event {
            RunEvent::Step(s) => bar.set_message(s),
            RunEvent::Write { done, total } if total > 0 => bar.set_position(done * 100 / total),
            RunEvent::Write { .. } => {}
            RunEvent::Finished(status) => bar.finish_with_message(status.as_str()),
        }
    };
    Ok(ois::commands::service(
        site, &ids, options, update_dps, &observer,
    )?)
}

fn service(site: &Site, args: &ServiceArgs) -> Result<u8, CliError> {
    let selection = args.selection.selection();
    let options = ServiceOptions {
        selection,
        continue_on_error: args.continue_on_error,
        target: args.selection.target,
        jobs: args
            .jobs
            .unwrap_or_else(|| servicing::default_jobs(args.images.len())),
        // Ctrl-C or SIGTERM cancels cleanly: the runs roll back at their next safe point.
        cancel: super::schedule::stop_on_signals()?,
    };
    let outcomes = service_images(site, &args.images, &options, args.update_dps, !args.json)?;
    let mut dp_code = 0;
    for ois::commands::ServiceOutcome {
        outcome: o,
        distributed,
        distribution_error,
    } in outcomes.iter()
    {
        if args.json {
            render::json_line(o);
        } else {
            print_outcome(o);
        }
        if let Some(e) = distribution_error {
            return Err(CliError::Other(e.clone()));
        }
        if let Some(distributed) = distributed {
            dp_code = dp_code.max(super::dp::print_updated_dps(
                &o.image,
                distributed,
                args.json,
            ));
        }
    }
    Ok(
        if outcomes
            .iter()
            .all(|o| o.outcome.status == RunStatus::Successful)
        {
            dp_code
        } else {
            1
        },
    )
}

/// One update's result on one index, in Update Status and the run history.
fn update_result(u: &ois::servicing::UpdateResult, done: &str) -> String {
    match (&u.error, u.applied) {
        (_, true) => done.to_string(),
        (Some(e), false) if e.starts_with(ois::servicing::NOT_WRITTEN) => {
            format!(
                "Not written: {}",
                e[ois::servicing::NOT_WRITTEN.len()..].trim_start_matches(": ")
            )
        }
        (e, false) => format!("Failed: {}", opt(e)),
    }
}

pub(super) fn print_outcome(o: &ImageOutcome) {
    println!(
        "{}: {} in {:.1} s, {} -> {}",
        o.image,
        o.status.as_str(),
        o.seconds,
        bytes(o.size_before),
        bytes(o.size_after)
    );
    if !o.applied.is_empty() {
        println!("  applied:    {}", o.applied.join(", "));
    }
    if !o.not_written.is_empty() {
        println!(
            "  not written: {} (applied in memory; the image does not have them)",
            o.not_written.join(", ")
        );
    }
    if !o.superseded.is_empty() {
        println!("  superseded: {} (not applied)", o.superseded.join(", "));
    }
    for f in &o.failed {
        println!("  failed:     {}: {}", f.id, f.error);
    }
    for n in &o.nested {
        let parents: Vec<String> = n.parent_indexes.iter().map(u32::to_string).collect();
        println!(
            "  nested {} (in index(es) {}): {}",
            n.path,
            parents.join(", "),
            if n.applied.is_empty() {
                "nothing applied".to_string()
            } else {
                format!("applied {}", n.applied.join(", "))
            }
        );
    }
    if let Some(e) = &o.error {
        println!("  {e}");
    }
}
