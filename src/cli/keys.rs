use clap::{Args, Subcommand};

use crate::config::Settings;
use crate::domain::{CalendarPeriod, Predictors, calendar};
use crate::ledger::{CustomerRef, GrantSpec, IssueError, IssueRequest, Ledger};
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
    /// Predictors to give access to (repeatable): @owner/name, * as wildcard, or * for all.
    #[arg(long = "grant", value_name = "PATTERN")]
    grants: Vec<String>,
    /// Predictions allowed per period.
    #[arg(long)]
    quota: Option<u64>,
    /// The quota's period.
    #[arg(long, value_enum, default_value = "month", requires = "quota")]
    period: PeriodArg,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PeriodArg {
    Day,
    Month,
}

impl From<PeriodArg> for CalendarPeriod {
    fn from(period: PeriodArg) -> Self {
        match period {
            PeriodArg::Day => Self::Day,
            PeriodArg::Month => Self::Month,
        }
    }
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
            quota: args.quota.map(|q| (q, args.period.into())),
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
    let grant_summary = grant.as_ref().map(describe_grant);
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

fn describe_grant(grant: &GrantSpec) -> String {
    let mut parts = vec![grant.predictors.describe()];
    if let Some((n, period)) = grant.quota {
        parts.push(format!("{n} predictions per {}", period.as_str()));
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
