//! Schedules, the scheduler, cancel and provisioning-mode repair: call the engine, render.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::commands::{print_outcome, CliError};
use super::render;
use super::ScheduleArgs;
use ois::commands::{Canceled, Repaired, Scheduled, When};
use ois::schedule::{timing, CancelOutcome, ScheduleRequest, SchedulerEvent, SchedulerOptions};
use ois::servicing;
use ois::site::Site;

/// A flag that SIGINT and SIGTERM set, so long work can stop at a safe point.
pub(super) fn stop_on_signals() -> Result<Arc<AtomicBool>, CliError> {
    ois::platform::stop_flag().map_err(|e| CliError::Other(e.to_string()))
}

pub(super) fn schedule(site: &Site, args: &ScheduleArgs) -> Result<u8, CliError> {
    let when = match (&args.cron, &args.at) {
        (Some(expression), _) => When::Cron(expression.clone()),
        (None, Some(text)) => When::At(text.clone()),
        (None, None) => When::Now,
    };
    let request = ScheduleRequest {
        updates: args.selection.selection(),
        timing: when.timing().map_err(CliError::Usage)?,
        continue_on_error: args.continue_on_error,
        update_dps: args.update_dps,
        target: args.selection.target,
    };
    let Scheduled {
        image: img,
        schedule: saved,
    } = ois::commands::schedule_updates(site, &args.image, &request)?;
    if args.json {
        render::json(&saved);
    } else {
        println!(
            "Scheduled servicing of image {}: {}, next run {}",
            img.name,
            saved.timing.describe(),
            render::opt(&saved.next_run_at.as_deref().map(local_time))
        );
        println!("The scheduler runs it: `ois scheduler run` (or `ois scheduler run --once`).");
    }
    Ok(0)
}

pub(super) fn unschedule(site: &Site, key: &str) -> Result<u8, CliError> {
    let img = ois::commands::unschedule(site, key)?;
    println!("Removed the schedule of image {}", img.name);
    Ok(0)
}

pub(super) fn cancel(site: &Site, key: &str, wait: u64, json: bool) -> Result<u8, CliError> {
    let Canceled {
        image: img,
        outcome,
    } = ois::commands::cancel(site, key, Duration::from_secs(wait))?;
    if json {
        render::json(&outcome);
    } else {
        match &outcome {
            CancelOutcome::Run {
                run_id,
                status,
                message,
            } => println!(
                "Run {run_id} of image {} ended {status}{}",
                img.name,
                message
                    .as_ref()
                    .map_or(String::new(), |m| format!(": {m}"))
            ),
            CancelOutcome::Requested { run_id } => println!(
                "Cancel of run {run_id} of image {} requested; it had not stopped after {wait} s (see `ois image show {}`)",
                img.name, img.name
            ),
            CancelOutcome::Scheduled { next_run_at, .. } => match next_run_at {
                Some(next) => println!(
                    "Canceled the pending run of image {}; its schedule runs next at {}",
                    img.name,
                    local_time(next)
                ),
                None => println!("Canceled the scheduled run of image {}", img.name),
            },
        }
    }
    Ok(match outcome {
        CancelOutcome::Run { status, .. } if status == "Canceled" => 0,
        CancelOutcome::Scheduled { .. } => 0,
        _ => 1,
    })
}

pub(super) fn set_provisioning_mode(
    site: &Site,
    key: &str,
    enabled: bool,
    json: bool,
) -> Result<u8, CliError> {
    if enabled {
        return Err(CliError::Usage(
            "an image enters provisioning mode only when a servicing run starts; use `false` to take it out".into(),
        ));
    }
    let Repaired { image: img, repair } = ois::commands::leave_provisioning_mode(site, key)?;
    if json {
        render::json(&json!({"image": img.name, "repair": repair}));
        return Ok(0);
    }
    match repair {
        None => println!(
            "Image {} is not in provisioning mode; nothing to do",
            img.name
        ),
        Some(r) => {
            println!(
                "Image {} left provisioning mode (it was in it since {}, {})",
                r.image, r.since, r.owner
            );
            if let Some(run_id) = r.run_id {
                println!("  run {run_id} ended {}", r.run_status.as_str());
            }
            for run_id in &r.orphaned_runs {
                println!(
                    "  run {run_id} ended Failed (left In progress by a process that is gone)"
                );
            }
            for path in &r.removed {
                println!("  removed {}", path.display());
            }
            println!("  {}", r.reason);
        }
    }
    Ok(0)
}

pub(super) fn scheduler_run(
    site: &Site,
    once: bool,
    jobs: Option<usize>,
    json: bool,
) -> Result<u8, CliError> {
    let stop = stop_on_signals()?;
    let options = SchedulerOptions {
        once,
        jobs: jobs.unwrap_or_else(|| servicing::default_jobs(usize::MAX)),
        stop,
    };
    if !json {
        eprintln!(
            "Scheduler running on site {} ({} image(s) at once){}",
            site.root().display(),
            options.jobs,
            if once {
                ""
            } else {
                "; stop with Ctrl-C or SIGTERM"
            }
        );
    }
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let on_event = |event: SchedulerEvent| {
        use std::sync::atomic::Ordering::Relaxed;
        // Progress is for live front ends (the site server); this output lists outcomes.
        if matches!(event, SchedulerEvent::Progress { .. }) {
            return;
        }
        match &event {
            SchedulerEvent::RunFinished(o) if o.status != servicing::RunStatus::Successful => {
                failures.fetch_add(1, Relaxed);
            }
            SchedulerEvent::RunNotStarted { .. } | SchedulerEvent::Error(_) => {
                failures.fetch_add(1, Relaxed);
            }
            SchedulerEvent::Distributed(outcomes)
                if outcomes
                    .iter()
                    .any(|o| o.status == ois::distribution::DistStatus::Failed) =>
            {
                failures.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        if json {
            render::json_line(&event_json(&event));
            return;
        }
        match event {
            SchedulerEvent::RunStarted { image, schedule } => println!(
                "{image}: scheduled run started ({})",
                schedule.timing.describe()
            ),
            SchedulerEvent::RunFinished(o) => print_outcome(&o),
            SchedulerEvent::RunNotStarted { image, error } => {
                println!("{image}: the scheduled run could not start: {error}")
            }
            SchedulerEvent::Repaired(r) => {
                println!("{}: left provisioning mode: {}", r.image, r.reason)
            }
            SchedulerEvent::Distributed(outcomes) => {
                for o in &outcomes {
                    println!("  {}", super::dp::outcome_line(o));
                }
            }
            SchedulerEvent::Validated(results) => {
                let bad: Vec<_> = results.iter().filter(|v| !v.ok).collect();
                println!(
                    "content validation: {} checked, {} mismatched",
                    results.len(),
                    bad.len()
                );
                for v in bad {
                    println!(
                        "  {} on {}: {}",
                        v.image,
                        v.dp,
                        v.problem.as_deref().unwrap_or("differs")
                    );
                }
            }
            SchedulerEvent::Error(e) => println!("error: {e}"),
            SchedulerEvent::Progress { .. } => {}
        }
    };
    ois::commands::run_scheduler(site, &options, &on_event)?;
    Ok(if once && failures.into_inner() > 0 {
        1
    } else {
        0
    })
}

fn event_json(event: &SchedulerEvent) -> serde_json::Value {
    match event {
        SchedulerEvent::RunStarted { image, schedule } => {
            json!({"event": "run_started", "image": image, "schedule": schedule})
        }
        SchedulerEvent::RunFinished(o) => json!({"event": "run_finished", "outcome": o}),
        SchedulerEvent::RunNotStarted { image, error } => {
            json!({"event": "run_not_started", "image": image, "error": error})
        }
        SchedulerEvent::Repaired(r) => json!({"event": "repaired", "repair": r}),
        SchedulerEvent::Distributed(outcomes) => {
            json!({"event": "distributed", "distributions": outcomes})
        }
        SchedulerEvent::Validated(results) => json!({"event": "validated", "results": results}),
        SchedulerEvent::Error(e) => json!({"event": "error", "error": e}),
        SchedulerEvent::Progress { image, .. } => json!({"event": "progress", "image": image}),
    }
}

/// A stored UTC time as the admin's local time.
pub(super) fn local_time(stamp: &str) -> String {
    timing::parse_stamp(stamp)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|| stamp.to_string())
}
