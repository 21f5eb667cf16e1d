//! `ois service-host`: `ois scheduler run` or `ois serve` as a Windows service, so a site
//! server keeps servicing on schedule without anyone logged on. `install` registers the
//! service (LocalSystem, automatic start) with a command line back into `service-host run`,
//! which the service control manager starts; its stop and shutdown controls raise the same
//! stop flag Ctrl+C raises, so runs end at a safe point. Linux hosts use their init system
//! (systemd) to run the same commands instead.

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use super::commands::CliError;

pub const DEFAULT_NAME: &str = "ois";

#[derive(Subcommand, Debug)]
pub enum ServiceHostCommand {
    /// Register a Windows service that runs `ois scheduler run` or `ois serve` for this site
    /// (LocalSystem, automatic start); arguments after `--` go to that command
    Install {
        #[arg(long, value_enum)]
        command: Hosted,
        /// Service name
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// `--jobs N` for the scheduler; `--listen ADDR`, `--scheduler`, `--jobs N` for serve
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Stop and remove the Windows service
    Uninstall {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// What the service control manager starts (not for use from a console)
    Run {
        #[arg(long, value_enum)]
        command: Hosted,
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
}

/// The long-running commands a service can host.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hosted {
    Scheduler,
    Serve,
}

impl Hosted {
    fn as_str(self) -> &'static str {
        match self {
            Hosted::Scheduler => "scheduler",
            Hosted::Serve => "serve",
        }
    }
}

/// `--jobs N` after `--`, for the scheduler.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = true)]
struct SchedulerLine {
    #[arg(long)]
    jobs: Option<usize>,
}

/// `ois serve`'s own options after `--`.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = true)]
struct ServeLine {
    #[command(flatten)]
    serve: super::serve::ServeArgs,
}

/// Runs the hosted command in this process until the stop flag is raised.
#[cfg(windows)]
fn run_hosted(site: &Path, command: Hosted, args: &[String]) -> Result<u8, CliError> {
    use clap::Parser;
    let usage = |e: clap::Error| CliError::Usage(format!("service-host {}: {e}", command.as_str()));
    match command {
        Hosted::Scheduler => {
            let line = SchedulerLine::try_parse_from(args).map_err(usage)?;
            super::schedule::scheduler_run(
                &ois::site::Site::open(site, ois::SCHEMA)?,
                false,
                line.jobs,
                false,
            )
        }
        Hosted::Serve => {
            let line = ServeLine::try_parse_from(args).map_err(usage)?;
            super::serve::serve(site, &line.serve)
        }
    }
}

/// Checks the arguments before they go into a service's command line: a typo would only
/// show as a service that stops at once.
fn check_args(command: Hosted, args: &[String]) -> Result<(), CliError> {
    use clap::Parser;
    let usage = |e: clap::Error| CliError::Usage(format!("service-host {}: {e}", command.as_str()));
    match command {
        Hosted::Scheduler => SchedulerLine::try_parse_from(args).map(drop).map_err(usage),
        Hosted::Serve => ServeLine::try_parse_from(args).map(drop).map_err(usage),
    }
}

pub fn run(site: &Path, cmd: ServiceHostCommand) -> Result<u8, CliError> {
    if let ServiceHostCommand::Install { command, args, .. } = &cmd {
        check_args(*command, args)?;
    }
    host::run(site, cmd)
}

#[cfg(not(windows))]
mod host {
    use super::*;

    pub fn run(_site: &Path, _cmd: ServiceHostCommand) -> Result<u8, CliError> {
        Err(CliError::Other(format!(
            "Windows services exist only on Windows, and this host runs {}: run `ois scheduler run` or `ois serve` under its init system (a systemd unit) instead",
            std::env::consts::OS
        )))
    }
}

#[cfg(windows)]
mod host {
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::sync::atomic::Ordering;
    use std::sync::OnceLock;
    use std::time::Duration;

    use windows_service::service::{
        ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
        ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_dispatcher;
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

    use super::*;

    /// What the service's main function runs: the dispatcher calls it with no way to pass
    /// state, so it is set before the dispatcher starts.
    struct Hosting {
        site: PathBuf,
        name: String,
        command: Hosted,
        args: Vec<String>,
    }

    static HOSTING: OnceLock<Hosting> = OnceLock::new();

    windows_service::define_windows_service!(ffi_service_main, service_main);

    fn failed(doing: &str, e: windows_service::Error) -> CliError {
        CliError::Other(format!(
            "{doing}: {e}; managing services needs an administrator's console"
        ))
    }

    pub fn run(site: &Path, cmd: ServiceHostCommand) -> Result<u8, CliError> {
        match cmd {
            ServiceHostCommand::Install {
                command,
                name,
                args,
            } => install(site, command, &name, &args),
            ServiceHostCommand::Uninstall { name } => uninstall(&name),
            ServiceHostCommand::Run {
                command,
                name,
                args,
            } => {
                let _ = HOSTING.set(Hosting {
                    site: site.to_path_buf(),
                    name: name.clone(),
                    command,
                    args,
                });
                service_dispatcher::start(&name, ffi_service_main).map_err(|e| {
                    failed(
                        &format!("cannot start as service {name} (`service-host run` is what the service control manager starts; from a console run `ois {}`)", command.as_str()),
                        e,
                    )
                })?;
                Ok(0)
            }
        }
    }

    fn install(site: &Path, command: Hosted, name: &str, args: &[String]) -> Result<u8, CliError> {
        let site = std::path::absolute(site).map_err(|e| {
            CliError::Other(format!(
                "cannot resolve the site folder {}: {e}",
                site.display()
            ))
        })?;
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Other(format!("cannot find ois.exe itself: {e}")))?;
        let mut launch: Vec<OsString> = vec![
            "--site".into(),
            site.clone().into_os_string(),
            "service-host".into(),
            "run".into(),
            "--command".into(),
            command.as_str().into(),
            "--name".into(),
            name.into(),
        ];
        if !args.is_empty() {
            launch.push("--".into());
            launch.extend(args.iter().map(OsString::from));
        }
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .map_err(|e| failed("cannot open the service control manager", e))?;
        let info = ServiceInfo {
            name: name.into(),
            display_name: format!("ois offline image servicing ({})", command.as_str()).into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: exe,
            launch_arguments: launch,
            dependencies: Vec::new(),
            account_name: None,
            account_password: None,
        };
        let service = manager
            .create_service(&info, ServiceAccess::CHANGE_CONFIG)
            .map_err(|e| failed(&format!("cannot create service {name}"), e))?;
        let _ = service.set_description(format!(
            "ois {} for site {}",
            command.as_str(),
            site.display()
        ));
        println!(
            "Installed service {name}: ois {} for site {} (starts with Windows; `sc start {name}` starts it now)",
            command.as_str(),
            site.display()
        );
        Ok(0)
    }

    fn uninstall(name: &str) -> Result<u8, CliError> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .map_err(|e| failed("cannot open the service control manager", e))?;
        let service = manager
            .open_service(
                name,
                ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
            )
            .map_err(|e| failed(&format!("cannot open service {name}"), e))?;
        let running = service
            .query_status()
            .is_ok_and(|s| s.current_state != ServiceState::Stopped);
        if running {
            // Runs in progress end at a safe point; the service is removed once it stops.
            let _ = service.stop();
        }
        service
            .delete()
            .map_err(|e| failed(&format!("cannot remove service {name}"), e))?;
        println!("Removed service {name}");
        Ok(0)
    }

    fn status(state: ServiceState, exit: u32) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code: ServiceExitCode::ServiceSpecific(exit),
            checkpoint: 0,
            // Stopping waits for a run to reach a safe point.
            wait_hint: if state == ServiceState::StopPending {
                Duration::from_secs(600)
            } else {
                Duration::ZERO
            },
            process_id: None,
        }
    }

    fn service_main(_arguments: Vec<OsString>) {
        let Some(hosting) = HOSTING.get() else {
            return;
        };
        let stop = ois::platform::stop_requested();
        let on_control = move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                stop.store(true, Ordering::SeqCst);
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let handle = match service_control_handler::register(&hosting.name, on_control) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(
                    "service {}: cannot register for controls: {e}",
                    hosting.name
                );
                return;
            }
        };
        let _ = handle.set_service_status(status(ServiceState::Running, 0));
        tracing::info!(
            "service {} running ois {} for site {}",
            hosting.name,
            hosting.command.as_str(),
            hosting.site.display()
        );
        let code = match run_hosted(&hosting.site, hosting.command, &hosting.args) {
            Ok(code) => u32::from(code),
            Err(e) => {
                tracing::error!(
                    "service {}: {}",
                    hosting.name,
                    super::super::commands::error_message(&e)
                );
                1
            }
        };
        let _ = handle.set_service_status(status(ServiceState::Stopped, code));
    }
}
