use clap::{Args, Subcommand};

use super::grants::{self, GrantFlags};
use crate::config::Settings;
use crate::domain::calendar;
use crate::ledger::{CustomerRef, IssueError, IssueRequest, Ledger};
use crate::store::{Keys, RevokeOutcome};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a new key; prints it alone on the last line. It is shown only this once.
    Issue(IssueArgs),
    /// List keys (never the keys themselves: their display prefixes).
    List {
        /// Only this customer's keys.
        #[arg(long)]
        customer: Option<String>,
    },
    /// Revoke a key, by id (key_…), display prefix (tb_…) or the whole key.
    Revoke { key: String },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// An existing customer (cus_… from Stripe, or loc_… made here).
    #[arg(long, conflicts_with = "email", required_unless_present = "email")]
    customer: Option<String>,
    /// The customer's email; a customer is created if none has it.
    #[arg(long)]
    email: Option<String>,
    /// A name for the key, shown in listings.
    #[arg(long)]
    name: Option<String>,
    /// Access to give the customer with the key (a grant, shared by all their keys).
    #[command(flatten)]
    grant: GrantFlags,
}

pub async fn run(
    command: KeysCommand,
    ledger: &Ledger,
    store: &dyn Keys,
    settings: &Settings,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Issue(args) => issue(args, ledger, settings).await,
        KeysCommand::List { customer } => list(customer.as_deref(), store).await,
        KeysCommand::Revoke { key } => match ledger.revoke_key(&key).await? {
            RevokeOutcome::Revoked { id } => {
                println!("Revoked {id}. Running servers refuse it within a second.");
                Ok(())
            }
            RevokeOutcome::AlreadyRevoked { id } => {
                println!("{id} was already revoked.");
                Ok(())
            }
            RevokeOutcome::NotFound => anyhow::bail!("no key has the id or prefix {key}"),
            RevokeOutcome::Ambiguous(ids) => anyhow::bail!(
                "{key} matches several keys ({}); revoke by id",
                ids.join(", ")
            ),
        },
    }
}

async fn issue(args: IssueArgs, ledger: &Ledger, settings: &Settings) -> anyhow::Result<()> {
    let grant = if args.grant.given() {
        Some(args.grant.spec(settings)?)
    } else {
        None
    };
    let customer = match (args.customer, args.email) {
        (Some(id), _) => CustomerRef::Id(id),
        (None, Some(email)) => CustomerRef::Email(email),
        (None, None) => anyhow::bail!("give --customer or --email"),
    };
    let grant_summary = grant.as_ref().map(grants::describe);
    let issued = ledger
        .issue_key(IssueRequest {
            customer,
            name: args.name,
            grant,
        })
        .await
        .map_err(|e| match e {
            IssueError::UnknownCustomer(id) => {
                anyhow::anyhow!("no customer {id} is known here (see `tollbooth customers list`)")
            }
            IssueError::AmbiguousEmail { email, ids } => anyhow::anyhow!(
                "several customers have the email {email}: {ids}; choose one with --customer"
            ),
            other => other.into(),
        })?;
    if let Some(report) = &issued.learned {
        println!("Read {} from Stripe: {report}", issued.customer_id);
    }
    let created = if issued.customer_created {
        " (new)"
    } else {
        ""
    };
    println!("Customer  {}{created}", issued.customer_id);
    match (&issued.grant_id, grant_summary) {
        (Some(id), Some(summary)) => println!("Grant     {id}: {summary}"),
        _ => println!("Grant     none: the key gives what the customer's plans give"),
    }
    if let Some(at) = issued.expires_at {
        println!(
            "Expires   {} (access ends at 00:00 UTC that day)",
            calendar::date(at)
        );
    }
    println!(
        "Key id    {} ({})",
        issued.key_id,
        issued.key.display_prefix()
    );
    println!("Use it as the Function access key: Function(access_key=\"<key>\")");
    println!("The key is shown once, on the next line:");
    println!("{}", issued.key.as_ref());
    Ok(())
}

async fn list(customer: Option<&str>, store: &dyn Keys) -> anyhow::Result<()> {
    let keys = store.list_keys(customer).await?;
    if keys.is_empty() {
        println!("No keys.");
        return Ok(());
    }
    println!(
        "{:<22} {:<14} {:<24} {:<16} {:<17} {:<17} status",
        "id", "prefix", "customer", "name", "created", "last used"
    );
    for k in keys {
        let status = match k.revoked_at {
            Some(at) => format!("revoked {}", calendar::date(at)),
            None => "active".into(),
        };
        println!(
            "{:<22} {:<14} {:<24} {:<16} {:<17} {:<17} {status}",
            k.id,
            k.display_prefix,
            k.email.as_deref().unwrap_or(&k.customer_id),
            k.name.as_deref().unwrap_or("-"),
            calendar::date_time(k.created_at),
            k.last_used_at
                .map_or_else(|| "never".into(), calendar::date_time),
        );
    }
    Ok(())
}
