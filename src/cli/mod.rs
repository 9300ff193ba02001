//! The `tollbooth` command: `serve` (the default) and the owner's tools. Serving is the
//! composition root's (`app::serve`), which the binary hands in: nothing here builds the
//! service.

mod audit;
mod customers;
mod grants;
mod keys;
mod stripe;
mod transfer;
mod usage;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::domain::Actor;
use crate::ledger::Ledger;
use crate::store::{self, Db, Mirror};
use crate::stripe::Syncer;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "tollbooth",
    version,
    about = "Sell access to your Function predictors."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the authorize route and the pages (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Issue, list and revoke access keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// List customers.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    /// Give a customer access by hand (apart from any key), list their grants, end one.
    #[command(subcommand)]
    Grants(grants::GrantsCommand),
    /// Pull products, prices, customers, subscriptions and purchases from Stripe; safe to run
    /// while the server runs.
    Sync,
    /// Webhook events that failed and are being retried, with their last error.
    Events,
    /// Write the whole ledger as JSON Lines to standard output (it holds the authorize token
    /// and key hashes: keep it private).
    Export,
    /// Read an export (a file, or - for standard input) into a new, empty database.
    Import { file: String },
    /// Print the URL to paste into Function as the authorizationUrl (it contains the secret).
    AuthorizeUrl,
    /// Authorizations allowed per day, customer, key and predictor (the last 30 days unless
    /// --since), with each day's total.
    Usage {
        /// Only this customer's use.
        #[arg(long)]
        customer: Option<String>,
        /// The first day shown (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// The last day shown (YYYY-MM-DD, UTC; default today).
        #[arg(long)]
        until: Option<String>,
    },
    /// The audit log, newest first: every change of the ledger, by whom (the command line,
    /// a customer on the account page, a Stripe event, the reconcile, a checkout).
    Audit {
        /// Only this customer's changes.
        #[arg(long)]
        customer: Option<String>,
        /// How many rows to show.
        #[arg(long, default_value_t = audit::DEFAULT_LIMIT)]
        limit: i64,
    },
}

/// Parses the command line and the environment, sets up logging and the runtime, and runs
/// the command; `serve` is how the service itself is run.
pub fn main<F, Fut>(serve: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("Configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve));
    if serving {
        let ansi = std::io::stdout().is_terminal();
        telemetry::init_subscriber("info", settings.log_json, ansi, std::io::stdout);
    } else {
        let ansi = std::io::stderr().is_terminal();
        telemetry::init_subscriber("warn", settings.log_json, ansi, std::io::stderr);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // The owner's commands change the ledger as the command line; the service's own work is
    // attributed by each of its edges.
    let ran = if serving {
        runtime.block_on(run(command, settings, serve))
    } else {
        runtime.block_on(Actor::Cli.acting(run(command, settings, serve)))
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run<F, Fut>(command: Command, settings: Settings, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let store = open(&settings).await?;
            println!("Database {} is up to date.", settings.database_display());
            store.close().await;
            Ok(())
        }
        Command::Keys(command) => {
            let store = open(&settings).await?;
            let ledger = ledger(&settings, &store)?;
            let result = keys::run(command, &ledger, store.as_ref(), &settings).await;
            store.close().await;
            result
        }
        Command::Grants(command) => {
            let store = open(&settings).await?;
            let ledger = ledger(&settings, &store)?;
            let result = grants::run(command, &ledger, store.as_ref(), &settings).await;
            store.close().await;
            result
        }
        Command::Customers(command) => {
            let store = open(&settings).await?;
            let result = customers::run(command, store.as_ref()).await;
            store.close().await;
            result
        }
        Command::AuthorizeUrl => print_authorize_url(settings).await,
        Command::Sync => {
            let store = open(&settings).await?;
            let ledger = ledger(&settings, &store)?;
            let result = stripe::sync(&ledger, &settings).await;
            store.close().await;
            result
        }
        Command::Export => {
            let store = open(&settings).await?;
            let result = transfer::export(store.as_ref()).await;
            store.close().await;
            result
        }
        Command::Import { file } => {
            let store = open(&settings).await?;
            let result = transfer::import(store.as_ref(), &file).await;
            store.close().await;
            result
        }
        Command::Events => {
            let store = open(&settings).await?;
            let result = stripe::failed_events(store.as_ref()).await;
            store.close().await;
            result
        }
        Command::Usage {
            customer,
            since,
            until,
        } => {
            let store = open(&settings).await?;
            let result = usage::run(
                store.as_ref(),
                customer.as_deref(),
                since.as_deref(),
                until.as_deref(),
            )
            .await;
            store.close().await;
            result
        }
        Command::Audit { customer, limit } => {
            let store = open(&settings).await?;
            let result = audit::run(store.as_ref(), customer.as_deref(), limit).await;
            store.close().await;
            result
        }
    }
}

/// The ledger's use cases for a command: its writes reach running servers through the ledger
/// version, within their poll interval.
fn ledger(settings: &Settings, store: &Arc<Db>) -> anyhow::Result<Ledger> {
    let stripe = settings
        .stripe_api()?
        .map(|api| Syncer::new(api, Arc::clone(store) as Arc<dyn Mirror>));
    Ok(Ledger::new(
        Arc::clone(store),
        None,
        settings.key_prefix.clone(),
        stripe,
        settings.public_url.clone(),
    ))
}

/// Every command works on a fresh database: migrations are applied first.
async fn open(settings: &Settings) -> anyhow::Result<Arc<Db>> {
    let store = store::connect(&settings.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Prints the authorize URL on its own, for the owner to copy.
pub async fn print_authorize_url(settings: Settings) -> anyhow::Result<()> {
    let public_url = settings.public_url.clone();
    let token = match &settings.authorize_token {
        Some(token) => token.expose_secret().to_owned(),
        None => {
            let store = open(&settings).await?;
            let stored = store.setting("authorize_token").await?;
            store.close().await;
            stored.ok_or_else(|| {
                anyhow::anyhow!("no authorize token yet: start the server once (`tollbooth serve`) to generate it")
            })?
        }
    };
    println!("{public_url}/authorize/{token}");
    Ok(())
}
