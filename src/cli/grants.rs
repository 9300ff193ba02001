//! `tollbooth grants`: access given by hand to a customer, apart from any key (give, list,
//! end). The same flags give a grant along with a new key (`keys issue`).

use clap::{Args, Subcommand};

use crate::clock::unix_now;
use crate::config::Settings;
use crate::domain::{CalendarPeriod, Predictors, calendar};
use crate::ledger::{GrantError, GrantSpec, Ledger};
use crate::store::{Directory, EndGrant};

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// Give a customer access: predictors, a quota or credits (shared by all their keys), a
    /// last day.
    Give {
        /// The customer (cus_… or loc_…; see `tollbooth customers list`).
        #[arg(long)]
        customer: String,
        #[command(flatten)]
        grant: GrantFlags,
    },
    /// A customer's grants, ended ones included.
    List {
        #[arg(long)]
        customer: String,
    },
    /// End a grant now (by its id, gr_…).
    End { id: String },
}

/// What a grant gives, as flags (`grants give` and `keys issue`).
#[derive(Debug, Args)]
pub struct GrantFlags {
    /// Predictors to give access to (repeatable): @owner/name, * as wildcard, or * for all.
    #[arg(long = "grant", value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Predictions allowed per period, for the customer (all their keys together).
    #[arg(long)]
    pub quota: Option<u64>,
    /// The quota's period.
    #[arg(long, value_enum, default_value = "month", requires = "quota")]
    pub period: PeriodArg,
    /// Predictions allowed in all, for the customer (all their keys together).
    #[arg(long, conflicts_with = "quota")]
    pub credits: Option<u64>,
    /// Last day of access (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub expires: Option<String>,
    /// A note kept with the grant.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeriodArg {
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

impl GrantFlags {
    /// Whether any flag asks for a grant.
    pub fn given(&self) -> bool {
        !self.patterns.is_empty()
            || self.quota.is_some()
            || self.credits.is_some()
            || self.expires.is_some()
    }

    /// The grant the flags describe, refused with the flag to change when it would give
    /// nothing (a quota or credits of 0, a last day already past) or names another owner's
    /// predictors.
    pub fn spec(&self, settings: &Settings) -> anyhow::Result<GrantSpec> {
        let predictors = if self.patterns.is_empty() {
            Predictors::all()
        } else {
            Predictors::parse(&self.patterns.join(","), settings.owner.as_ref())
                .map_err(|e| anyhow::anyhow!("--grant: {e}"))?
        };
        let last_day = self
            .expires
            .as_deref()
            .map(|d| {
                calendar::parse_date(d)
                    .ok_or_else(|| anyhow::anyhow!("--expires {d:?} is not a date (YYYY-MM-DD)"))
            })
            .transpose()?;
        let spec = GrantSpec {
            predictors,
            quota: self.quota.map(|q| (q, self.period.into())),
            credits: self.credits,
            last_day,
            note: self.note.clone(),
        };
        spec.check(unix_now()).map_err(|e| match e {
            GrantError::ZeroQuota => anyhow::anyhow!("--quota must be at least 1"),
            GrantError::ZeroCredits => anyhow::anyhow!("--credits must be at least 1"),
            GrantError::LastDayPassed(day) => {
                anyhow::anyhow!("--expires {day} has passed: give today or a later day")
            }
            GrantError::NoteTooLong => anyhow::anyhow!("--note must be at most 500 characters"),
            other => anyhow::anyhow!("{other}"),
        })?;
        Ok(spec)
    }
}

/// "all of acme's predictors, 100 credits (shared by the customer's keys)".
pub fn describe(grant: &GrantSpec) -> String {
    let mut parts = vec![grant.predictors.describe()];
    if let Some((n, period)) = grant.quota {
        parts.push(format!(
            "{n} authorizations per {} (shared by the customer's keys)",
            period.as_str()
        ));
    }
    if let Some(n) = grant.credits {
        parts.push(format!("{n} credits (shared by the customer's keys)"));
    }
    if grant.quota.is_none() && grant.credits.is_none() {
        parts.push("unlimited".into());
    }
    parts.join(", ")
}

pub async fn run(
    command: GrantsCommand,
    ledger: &Ledger,
    store: &dyn Directory,
    settings: &Settings,
) -> anyhow::Result<()> {
    match command {
        GrantsCommand::Give { customer, grant } => {
            let spec = grant.spec(settings)?;
            let given = ledger.grant(&customer, &spec).await.map_err(|e| match e {
                GrantError::UnknownCustomer(id) => anyhow::anyhow!(
                    "no customer {id} is known here (see `tollbooth customers list`)"
                ),
                other => other.into(),
            })?;
            println!("Grant {} for {}: {}", given.id, customer, describe(&spec));
            if let Some(at) = given.expires_at {
                println!(
                    "Ends at the start of {} (UTC). Running servers apply it within a second.",
                    calendar::date(at)
                );
            } else {
                println!("Running servers apply it within a second.");
            }
            Ok(())
        }
        GrantsCommand::List { customer } => {
            let grants = store.grants_of(&customer).await?;
            if grants.is_empty() {
                println!("No grants for {customer}.");
                return Ok(());
            }
            let now = unix_now();
            for g in grants {
                let covers = Predictors::parse(&g.predictors, None)
                    .map_or_else(|_| g.predictors.clone(), |p| p.describe());
                let limit = match (g.quota, g.quota_period.as_deref(), g.credits) {
                    (Some(n), Some(p), _) => format!("{n} per {p}"),
                    (_, _, Some(n)) => format!("{n} credits"),
                    _ => "unlimited".into(),
                };
                let state = match (g.revoked_at, g.expires_at) {
                    (Some(at), _) => format!("ended {}", calendar::date(at)),
                    (None, Some(at)) if at <= now => format!("expired {}", calendar::date(at - 1)),
                    (None, Some(at)) => format!("active until {}", calendar::date(at - 1)),
                    (None, None) => "active".into(),
                };
                println!(
                    "{}  {covers}, {limit}  {state}{}",
                    g.id,
                    g.note.map(|n| format!("  ({n})")).unwrap_or_default()
                );
            }
            Ok(())
        }
        GrantsCommand::End { id } => match ledger.end_grant(&id).await? {
            EndGrant::Ended { .. } => {
                println!("Ended {id}. Running servers apply it within a second.");
                Ok(())
            }
            EndGrant::AlreadyEnded => {
                println!("{id} had ended already.");
                Ok(())
            }
            EndGrant::NotFound => {
                anyhow::bail!(
                    "no grant has the id {id} (see `tollbooth grants list --customer ID`)"
                )
            }
        },
    }
}
