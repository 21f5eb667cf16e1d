//! `ois serve` and `ois site user …`: the site server and its accounts.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use super::commands::CliError;
use super::render;
use ois::server::{self, accounts, Role, ServerOptions};
use ois::site::Site;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs TLS and accounts
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Run the scheduler in this process too (one service unit for the whole site)
    #[arg(long)]
    pub scheduler: bool,
    /// Images the scheduler services at once [default: from CPU count and free memory]
    #[arg(long)]
    pub jobs: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add an account of the site server; prints its API token once
    Add {
        name: String,
        /// admin (changes things), read-only (sees everything, changes nothing) or dp-agent
        /// (a pull DP's agent: the /api/v1/pull/ routes of the one DP it registers)
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        json: bool,
    },
    /// List the accounts
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account: its token stops working at once
    Remove { name: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

pub fn serve(site: &std::path::Path, args: &ServeArgs) -> Result<u8, CliError> {
    let options = ServerOptions {
        listen: args.listen,
        scheduler: args.scheduler,
        jobs: args
            .jobs
            .unwrap_or_else(|| ois::servicing::default_jobs(usize::MAX)),
    };
    server::serve(site, options).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(0)
}

pub fn user(site: &Site, cmd: UserCommand) -> Result<u8, CliError> {
    let db = site.database()?;
    let err = |e: accounts::AccountError| CliError::Other(e.to_string());
    match cmd {
        UserCommand::Add { name, role, json } => {
            let (account, token) = accounts::add(&db, &name, role).map_err(err)?;
            if json {
                render::json(&serde_json::json!({"account": account, "token": token}));
            } else {
                println!(
                    "Added {} account {}. Its token (shown only now):",
                    role.as_str(),
                    account.name
                );
                println!("{token}");
            }
        }
        UserCommand::List { json } => {
            let list = accounts::list(&db).map_err(err)?;
            if json {
                render::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| vec![a.name.clone(), a.role.as_str().into(), a.created_at.clone()])
                    .collect();
                render::table(&["Name", "Role", "Created"], &rows);
            }
        }
        UserCommand::Remove { name } => {
            let account = accounts::remove(&db, &name).map_err(err)?;
            println!(
                "Removed account {}; its token no longer works",
                account.name
            );
        }
    }
    Ok(0)
}
