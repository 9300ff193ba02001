use clap::{Args, Subcommand};

use crate::clock::unix_now;
use crate::config::Settings;
use crate::domain::{Predictors, calendar};
use crate::issue::{CustomerRef, GrantSpec, IssueRequest, QuotaPeriodArg, issue_key};
use crate::store::{Db, Keys, Mirror, RevokeOutcome};
use crate::stripe::Syncer;
use std::sync::Arc;

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
    /// Revoke a key, by id (key_…) or display prefix (tb_…).
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
    /// Predictors to give access to (repeatable): @owner/name, * as wildcard, or * for all.
    #[arg(long = "grant", value_name = "PATTERN")]
    grants: Vec<String>,
    /// Predictions allowed per period.
    #[arg(long)]
    quota: Option<u64>,
    /// The quota's period.
    #[arg(long, value_enum, default_value = "month", requires = "quota")]
    period: QuotaPeriodArg,
    /// Predictions allowed in all.
    #[arg(long, conflicts_with = "quota")]
    credits: Option<u64>,
    /// Last day of access (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    expires: Option<String>,
    /// A note kept with the grant.
    #[arg(long)]
    note: Option<String>,
}

pub async fn run(command: KeysCommand, store: &Arc<Db>, settings: &Settings) -> anyhow::Result<()> {
    match command {
        KeysCommand::Issue(args) => issue(args, store, settings).await,
        KeysCommand::List { customer } => list(customer.as_deref(), store.as_ref()).await,
        KeysCommand::Revoke { key } => match store.revoke_key(&key, unix_now()).await? {
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

async fn issue(args: IssueArgs, store: &Arc<Db>, settings: &Settings) -> anyhow::Result<()> {
    let wants_grant = !args.grants.is_empty()
        || args.quota.is_some()
        || args.credits.is_some()
        || args.expires.is_some();
    let grant = if wants_grant {
        let predictors = if args.grants.is_empty() {
            Predictors::all()
        } else {
            Predictors::parse(&args.grants.join(","), settings.owner.as_ref())?
        };
        let last_day = args
            .expires
            .as_deref()
            .map(|d| {
                calendar::parse_date(d)
                    .ok_or_else(|| anyhow::anyhow!("--expires {d:?} is not a date (YYYY-MM-DD)"))
            })
            .transpose()?;
        Some(GrantSpec {
            predictors,
            quota: args.quota.map(|q| (q, args.period)),
            credits: args.credits,
            last_day,
            note: args.note,
        })
    } else {
        None
    };
    let customer = match (args.customer, args.email) {
        (Some(id), _) => CustomerRef::Id(id),
        (None, Some(email)) => CustomerRef::Email(email),
        (None, None) => anyhow::bail!("give --customer or --email"),
    };
    if let CustomerRef::Id(id) = &customer {
        learn_stripe_customer(id, store, settings).await?;
    }
    let grant_summary = grant.as_ref().map(describe_grant);
    let issued = issue_key(
        store.as_ref(),
        &settings.key_prefix,
        IssueRequest {
            customer,
            name: args.name,
            grant,
        },
        unix_now(),
    )
    .await?;
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

/// A `cus_…` not known here yet is read from Stripe, with its subscriptions and purchases.
async fn learn_stripe_customer(
    id: &str,
    store: &Arc<Db>,
    settings: &Settings,
) -> anyhow::Result<()> {
    if !id.starts_with("cus_") || store.customer(id).await?.is_some() {
        return Ok(());
    }
    let Some(api) = settings.stripe_api()? else {
        return Ok(());
    };
    let report = Syncer::new(api, Arc::clone(store) as Arc<dyn Mirror>)
        .refresh_customer(id)
        .await?;
    if report.customers == 0 {
        anyhow::bail!("Stripe has no customer {id}");
    }
    println!("Read {id} from Stripe: {report}");
    Ok(())
}

fn describe_grant(grant: &GrantSpec) -> String {
    let mut parts = vec![grant.predictors.to_string()];
    if let Some((n, period)) = grant.quota {
        let per = if period == QuotaPeriodArg::Day {
            "day"
        } else {
            "month"
        };
        parts.push(format!("{n} predictions per {per}"));
    }
    if let Some(n) = grant.credits {
        parts.push(format!("{n} credits"));
    }
    if grant.quota.is_none() && grant.credits.is_none() {
        parts.push("unlimited".into());
    }
    parts.join(", ")
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
