use clap::{Args, Subcommand};

use super::grants::{self, GrantFlags};
use crate::config::Settings;
use crate::domain::{Grace, KeyCap, calendar};
use crate::ledger::{CustomerRef, IssueError, IssueRequest, KeyRef, Ledger};
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
    /// Replace a key by a new one with the same name and cap; prints the new key alone on the
    /// last line, once. The old key keeps working for the grace period, then is refused.
    Roll {
        /// The key to replace: its id (key_…), display prefix (tb_…) or the whole key.
        key: String,
        /// How long the old key keeps working: none, 1h or 24h.
        #[arg(long, default_value = "none", value_parser = parse_grace)]
        grace: Grace,
    },
    /// Set a key's own cap (e.g. 100/day, 5000/month, 10000 in all), or `none` to remove it.
    /// The customer's plans are shared by all their keys; a cap limits this key alone.
    Cap {
        /// The key: its id (key_…), display prefix (tb_…) or the whole key.
        key: String,
        /// 100/day, 5000/month, 10000 (in all), or none.
        #[arg(value_parser = parse_cap_or_none)]
        cap: CapSetting,
    },
}

/// A cap to set, or none to remove the key's cap.
#[derive(Debug, Clone, Copy)]
pub struct CapSetting(Option<KeyCap>);

fn parse_cap_or_none(input: &str) -> Result<CapSetting, String> {
    if input.trim().eq_ignore_ascii_case("none") {
        return Ok(CapSetting(None));
    }
    KeyCap::parse(input)
        .map(|cap| CapSetting(Some(cap)))
        .map_err(|e| e.to_string())
}

fn parse_cap(input: &str) -> Result<KeyCap, String> {
    KeyCap::parse(input).map_err(|e| e.to_string())
}

fn parse_grace(input: &str) -> Result<Grace, String> {
    Grace::parse(input).map_err(|e| e.to_string())
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
    /// The key's own cap: 100/day, 5000/month or 10000 (in all). The customer's plans and
    /// grants are shared by all their keys; a cap limits this key alone.
    #[arg(long, value_parser = parse_cap)]
    cap: Option<KeyCap>,
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
        KeysCommand::Roll { key, grace } => {
            let rolled = ledger.roll_key(KeyRef::Any(&key), grace, None).await?;
            println!("Customer  {}", rolled.customer_id);
            match grace {
                Grace::None => println!("Old key   {} stopped now", rolled.old_key_id),
                _ => println!(
                    "Old key   {} keeps working until {} UTC",
                    rolled.old_key_id,
                    calendar::date_time(rolled.old_stops_at)
                ),
            }
            println!(
                "Key id    {} ({})",
                rolled.key_id,
                rolled.key.display_prefix()
            );
            println!("The new key is shown once, on the next line:");
            println!("{}", rolled.key.as_ref());
            Ok(())
        }
        KeysCommand::Cap { key, cap } => {
            let id = ledger.cap_key(KeyRef::Any(&key), cap.0).await?;
            match cap.0 {
                Some(cap) => println!(
                    "{id} is now limited to {}, whatever its customer's plans allow. \
                     Running servers apply it within a second.",
                    cap.describe()
                ),
                None => println!("{id} has no cap of its own now: its customer's plans apply."),
            }
            Ok(())
        }
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
            cap: args.cap,
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
    if let Some(cap) = args.cap {
        println!("Key cap   {}, for this key alone", cap.describe());
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
    let now = crate::clock::unix_now();
    for k in keys {
        let mut status = match (k.revoked_at, k.expires_at, &k.replaced_by) {
            (Some(at), _, _) => format!("revoked {}", calendar::date(at)),
            (None, Some(at), Some(by)) if at <= now => {
                format!("replaced by {by}, stopped {}", calendar::date_time(at))
            }
            (None, Some(at), Some(by)) => {
                format!("replaced by {by}, stops {}", calendar::date_time(at))
            }
            _ => "active".into(),
        };
        if let Some(cap) = k.cap() {
            status.push_str(&format!(", cap {}", cap.describe()));
        }
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
