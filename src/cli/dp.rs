//! `ois dp …`, `ois content locate` and `ois image distribute`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::commands::CliError;
use super::render::{self, bytes, opt};
use ois::commands::{self, Distributed};
use ois::distribution::{
    self, hresult, Distribution, DistributionPoint, DpOutcome, DpProperties, Nal,
};
use ois::site::Site;

#[derive(Subcommand, Debug)]
pub enum DpCommand {
    /// Add a distribution point
    Add {
        /// NAL path, e.g. ["Display=\\DP01.contoso.com\"]MSWNET:["SMS_SITE=PS1"]\\DP01.contoso.com\
        nal_path: String,
        /// Directory or mounted share (absolute path), or http(s)://HOST/PATH (WebDAV)
        #[arg(long)]
        target: String,
        #[command(flatten)]
        props: PropArgs,
        #[arg(long)]
        json: bool,
    },
    /// List distribution points
    List {
        #[arg(long)]
        json: bool,
    },
    /// Properties of a distribution point and the status of every image version on it
    Show {
        nal_path: String,
        #[arg(long)]
        json: bool,
    },
    /// Change properties (refused while the DP is in maintenance mode)
    Set {
        nal_path: String,
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        props: PropArgs,
        /// Boundary group to drop
        #[arg(long = "remove-boundary-group", value_name = "G")]
        remove_boundary_groups: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Forget a distribution point (its content stays on the target)
    Remove { nal_path: String },
    /// SetDPMaintenanceMode: MODE 1 enables, 0 disables; prints the uint32 result
    SetMaintenanceMode {
        nal_path: String,
        /// 1 enables, 0 disables
        #[arg(allow_hyphen_values = true)]
        mode: String,
    },
    /// Re-hash what each DP holds against the site database
    Validate {
        nal_path: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send pending and failed distributions whose retry time has come
    Retry {
        #[arg(long)]
        json: bool,
    },
    /// Move DP content to the current layout (DPs in maintenance mode included)
    Upgrade {
        #[arg(long)]
        json: bool,
    },
    /// Run a pull DP: register with the site, fetch assigned images as deltas, serve clients
    Agent(AgentArgs),
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The site server, e.g. https://site.contoso.com:8530
    #[arg(long)]
    pub site_url: String,
    /// An API token of a site account (`ois site user add NAME --role admin`)
    #[arg(long, env = "OIS_AGENT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where the DP's content lives (served under /ois/)
    #[arg(long)]
    pub root: std::path::PathBuf,
    /// Address to serve clients on
    #[arg(long, default_value = "0.0.0.0:8531")]
    pub listen: std::net::SocketAddr,
    /// The DP's NAL path on the site; by default this host's name with the site code PS1
    #[arg(long)]
    pub nal_path: Option<String>,
    /// URL clients reach this agent at (default: http:// and the --listen address)
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// Seconds between polls of the site
    #[arg(long, default_value_t = 60)]
    pub poll_seconds: u64,
    /// Fetch at most this many bytes a second (a WAN link's share)
    #[arg(long)]
    pub max_bytes_per_second: Option<u64>,
}

/// `ois dp agent`: runs until SIGTERM or SIGINT (Ctrl+C on Windows); needs no site directory.
pub fn agent(args: AgentArgs) -> Result<u8, CliError> {
    let nal_path = match args.nal_path {
        Some(n) => n,
        None => {
            let host = sysinfo::System::host_name()
                .ok_or_else(|| CliError::Usage("this host has no name: give --nal-path".into()))?;
            format!("[\"Display=\\\\{host}\\\"]MSWNET:[\"SMS_SITE=PS1\"]\\\\{host}\\")
        }
    };
    let stop = super::schedule::stop_on_signals()?;
    let options = distribution::agent::AgentOptions {
        site_url: args.site_url,
        token: args.token,
        root: args.root,
        listen: args.listen,
        nal_path,
        advertise: args.advertise_url,
        poll: std::time::Duration::from_secs(args.poll_seconds.max(1)),
        max_rate: args.max_bytes_per_second,
    };
    distribution::agent::run(&options, stop).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(0)
}

#[derive(Args, Debug, Clone, Default)]
pub struct PropArgs {
    #[arg(long)]
    pub description: Option<String>,
    /// Boundary group (repeat for several)
    #[arg(long = "boundary-group", value_name = "G")]
    pub boundary_groups: Vec<String>,
    /// Storage option KEY=VALUE for the target's service (e.g. region=eu-west-1)
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Credential KEY=ENVVAR: the value is read from environment variable ENVVAR, so it never
    /// appears on a command line (e.g. --secret password=DP01_PASSWORD)
    #[arg(long = "secret", value_name = "KEY=ENVVAR")]
    pub secrets: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ContentCommand {
    /// Distribution points a client may download the image from (not those in maintenance mode)
    Locate {
        image: String,
        /// Only DPs in this boundary group
        #[arg(long)]
        boundary_group: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct DistributeArgs {
    pub image: String,
    /// Distribution points (NAL paths); they become assigned to the image. Default: every DP
    /// that holds the image or is assigned to it
    #[arg(long = "dp", value_name = "NALPATH")]
    pub dps: Vec<String>,
    /// Transfers at once
    #[arg(long, default_value_t = distribution::DEFAULT_JOBS)]
    pub jobs: usize,
    #[arg(long)]
    pub json: bool,
}

fn key_value(s: &str, what: &str) -> Result<(String, String), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(CliError::Usage(format!("{what} {s:?}: use KEY=VALUE"))),
    }
}

fn properties(
    target: Option<String>,
    p: &PropArgs,
    remove: &[String],
) -> Result<DpProperties, CliError> {
    let mut secrets = Vec::new();
    for s in &p.secrets {
        let (k, var) = key_value(s, "--secret")?;
        let value = std::env::var(&var).map_err(|_| {
            CliError::Usage(format!(
                "--secret {k}={var}: environment variable {var} is not set"
            ))
        })?;
        secrets.push((k, value));
    }
    Ok(DpProperties {
        target,
        description: p.description.clone(),
        add_boundary_groups: p.boundary_groups.clone(),
        remove_boundary_groups: remove.to_vec(),
        settings: p
            .settings
            .iter()
            .map(|s| key_value(s, "--setting"))
            .collect::<Result<_, _>>()?,
        secrets,
    })
}

pub fn run(site: &Site, cmd: DpCommand) -> Result<u8, CliError> {
    match cmd {
        DpCommand::Add {
            nal_path,
            target,
            props,
            json,
        } => {
            let dp = commands::add_dp(site, &nal_path, &properties(Some(target), &props, &[])?)?;
            if json {
                render::json(&dp);
            } else {
                println!("Added distribution point {}", dp.nal_path);
            }
            Ok(0)
        }
        DpCommand::List { json } => {
            let dps = commands::list_dps(site)?;
            if json {
                render::json(&dps);
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = dps
                .iter()
                .map(|d| {
                    vec![
                        d.server.clone(),
                        d.site_code.clone(),
                        if d.maintenance_mode { "On" } else { "Off" }.into(),
                        if d.boundary_groups.is_empty() {
                            "-".into()
                        } else {
                            d.boundary_groups.join(", ")
                        },
                        d.target.clone(),
                        // Pull DPs: when their agent was last seen.
                        d.pull
                            .as_ref()
                            .and_then(|p| p.last_contact.clone())
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            render::table(
                &[
                    "Server",
                    "Site",
                    "Maintenance mode",
                    "Boundary groups",
                    "Target",
                    "Agent last seen",
                ],
                &rows,
            );
            Ok(0)
        }
        DpCommand::Show { nal_path, json } => {
            let view = commands::show_dp(site, &nal_path)?;
            if json {
                render::json_value(&view);
            } else {
                print_dp(&view.dp);
                println!("\nContent");
                print_distributions(&view.distributions, false);
            }
            Ok(0)
        }
        DpCommand::Set {
            nal_path,
            target,
            props,
            remove_boundary_groups,
            json,
        } => {
            let p = properties(target, &props, &remove_boundary_groups)?;
            let dp = commands::set_dp(site, &nal_path, &p)?;
            if json {
                render::json(&dp);
            } else {
                print_dp(&dp);
            }
            Ok(0)
        }
        DpCommand::Remove { nal_path } => {
            let dp = commands::remove_dp(site, &nal_path)?;
            println!(
                "Removed distribution point {}; its content on {} is kept",
                dp.nal_path, dp.target
            );
            Ok(0)
        }
        DpCommand::SetMaintenanceMode { nal_path, mode } => {
            set_maintenance_mode(site, &nal_path, &mode)
        }
        DpCommand::Validate { nal_path, json } => {
            let results = commands::validate_dps(site, nal_path.as_deref())?;
            let bad = results.iter().filter(|r| !r.ok).count();
            if json {
                render::json(&results);
            } else {
                for r in &results {
                    match &r.problem {
                        None if r.requested => println!(
                            "Asked   {}  {}  {}  (its agent re-hashes it and reports)",
                            server(&r.dp),
                            r.image,
                            r.sha256
                        ),
                        None => println!("OK      {}  {}  {}", server(&r.dp), r.image, r.sha256),
                        Some(p) => println!("Failed  {}  {}  {p}", server(&r.dp), r.image),
                    }
                }
                println!("{} checked, {} failed", results.len(), bad);
            }
            Ok(u8::from(bad > 0))
        }
        DpCommand::Retry { json } => {
            let outcomes = commands::retry_distributions(site)?;
            print_outcomes(&outcomes, json)
        }
        DpCommand::Agent(args) => agent(args),
        DpCommand::Upgrade { json } => {
            let ups = commands::upgrade_dp_layouts(site)?;
            if json {
                render::json(&ups);
            } else if ups.is_empty() {
                println!("Every distribution point has the current content layout");
            } else {
                for u in &ups {
                    match &u.error {
                        None => println!("{}: layout {} -> {}", server(&u.dp), u.from, u.to),
                        Some(e) => println!("{}: layout {} kept: {e}", server(&u.dp), u.from),
                    }
                }
            }
            Ok(u8::from(ups.iter().any(|u| u.error.is_some())))
        }
    }
}

fn server(nal_path: &str) -> String {
    Nal::parse(nal_path).map_or_else(|_| nal_path.to_string(), |n| n.server)
}

/// Prints the uint32 result on stdout, as the WMI method returns it; the reason on stderr.
fn set_maintenance_mode(site: &Site, nal_path: &str, mode: &str) -> Result<u8, CliError> {
    match commands::set_maintenance_mode(site, nal_path, mode) {
        Ok(set) => {
            for image in &set.change.unserved_images {
                eprintln!(
                    "warning: image {image} has no other distribution point outside maintenance \
                     mode: clients cannot download it until maintenance mode is disabled"
                );
            }
            println!("{}", set.return_value);
            if let Some(e) = set.send_error {
                return Err(CliError::Other(e));
            }
            for o in &set.sent {
                eprintln!("{}", outcome_line(o));
            }
            if set
                .sent
                .iter()
                .any(|o| o.status != distribution::DistStatus::Installed)
            {
                eprintln!("warning: some pending distributions failed; see `ois dp show`");
            }
            Ok(0)
        }
        Err(failed) => {
            let code = failed.return_value;
            println!("{code}");
            eprintln!(
                "error: 0x{code:08X} {}: {}",
                hresult::name(code),
                super::hint::with_hint(&failed.error.to_string(), failed.error.hint().as_ref())
            );
            Ok(1)
        }
    }
}

fn print_dp(dp: &DistributionPoint) {
    println!("Distribution point  {}", dp.nal_path);
    println!("Server              {}", dp.server);
    println!("Site code           {}", dp.site_code);
    println!("Target              {}", dp.target);
    if let Some(p) = &dp.pull {
        println!("Agent last seen     {}", opt(&p.last_contact));
        println!("Agent version       {}", opt(&p.agent_version));
        if let Some(account) = &p.agent_account {
            println!("Agent account       {account} (dp-agent)");
        }
        println!("Bytes served        {}", bytes(p.bytes_served));
        if let Some(b) = p.last_fetch_bytes {
            println!("Last fetch          {}", bytes(b));
        }
        if let Some(at) = &p.validation_requested_at {
            println!("Validation asked    {at} (the agent answers at its next poll)");
        }
    }
    println!("Description         {}", opt(&dp.description));
    println!(
        "Boundary groups     {}",
        if dp.boundary_groups.is_empty() {
            "-".into()
        } else {
            dp.boundary_groups.join(", ")
        }
    );
    for (k, v) in &dp.settings {
        println!("Setting             {k} = {v}");
    }
    for k in &dp.secrets {
        println!("Secret              {k} (set)");
    }
    match &dp.maintenance_mode {
        true => println!(
            "Maintenance mode    On since {} (properties are read-only)",
            opt(&dp.maintenance_since)
        ),
        false => println!("Maintenance mode    Off"),
    }
    println!("Content layout      {}", dp.layout_version);
}

/// Status rows; `by_dp` names the DP in each row (for `image show`), else the image.
pub(super) fn print_distributions(dists: &[Distribution], by_dp: bool) {
    if dists.is_empty() {
        println!("  (none)");
        return;
    }
    let rows: Vec<Vec<String>> = dists
        .iter()
        .map(|d| {
            vec![
                if by_dp {
                    d.server.clone()
                } else {
                    d.image.clone()
                },
                format!(
                    "{}{}",
                    &d.sha256[..d.sha256.len().min(16)],
                    if d.current { "" } else { " (older)" }
                ),
                bytes(d.size_bytes),
                d.status.as_str().to_string(),
                opt(&d.installed_at),
                opt(&d.error),
            ]
        })
        .collect();
    render::table(
        &[
            if by_dp { "  DP" } else { "  Image" },
            "Version (SHA-256)",
            "Size",
            "Status",
            "Installed",
            "Error",
        ],
        &rows
            .into_iter()
            .map(|mut r| {
                r[0] = format!("  {}", r[0]);
                r
            })
            .collect::<Vec<_>>(),
    );
}

pub(super) fn outcome_line(o: &DpOutcome) -> String {
    format!(
        "{}: {} {} ({}{}){}",
        server(&o.dp),
        o.image,
        o.status.as_str(),
        o.action,
        if o.bytes_sent > 0 {
            format!(", {} in {:.1} s", bytes(o.bytes_sent), o.seconds)
        } else {
            String::new()
        },
        o.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
    )
}

/// Exit 0 only when every DP outside maintenance mode has the content.
pub(super) fn print_outcomes(outcomes: &[DpOutcome], json: bool) -> Result<u8, CliError> {
    if json {
        render::json(&outcomes);
    } else {
        for o in outcomes {
            println!("{}", outcome_line(o));
        }
    }
    Ok(u8::from(
        outcomes
            .iter()
            .any(|o| o.status == distribution::DistStatus::Failed),
    ))
}

pub fn distribute(site: &Site, args: &DistributeArgs) -> Result<u8, CliError> {
    let Distributed { image, outcomes } =
        commands::distribute_image(site, &args.image, &args.dps, args.jobs)?;
    if outcomes.is_empty() {
        return Err(CliError::Usage(format!(
            "image {} is on no distribution point and assigned to none: name one with --dp NALPATH",
            image.name
        )));
    }
    print_outcomes(&outcomes, args.json)
}

/// After a successful servicing run with --update-dps: where the new version went. The exit
/// code part: 1 when a DP failed.
pub fn print_updated_dps(image_name: &str, outcomes: &[distribution::DpOutcome], json: bool) -> u8 {
    if outcomes.is_empty() {
        if !json {
            println!("  {image_name}: on no distribution point; nothing to update");
        }
        return 0;
    }
    for o in outcomes {
        if json {
            render::json_line(&json!({"distribution": o}));
        } else {
            println!("  {}", outcome_line(o));
        }
    }
    u8::from(
        outcomes
            .iter()
            .any(|o| o.status == distribution::DistStatus::Failed),
    )
}

pub fn content(site: &Site, cmd: ContentCommand) -> Result<u8, CliError> {
    match cmd {
        ContentCommand::Locate {
            image,
            boundary_group,
            json,
        } => {
            let locations = commands::locate_content(site, &image, boundary_group.as_deref())?;
            if json {
                render::json(&locations);
            } else {
                for l in &locations {
                    println!("{}  {}", l.server, l.location);
                }
            }
            if locations.is_empty() {
                eprintln!("no distribution point can serve image {image} now");
                return Ok(1);
            }
            Ok(0)
        }
    }
}
