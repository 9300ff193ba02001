//! Who changes the ledger, for the audit log. Each edge says who is acting for the work it
//! starts (`Actor::Cli.acting(…)`), and every ledger write made inside that work is recorded
//! as theirs, however deep in the use cases it happens.

use std::fmt;

tokio::task_local! {
    static ACTOR: Actor;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The owner, at the command line.
    Cli,
    /// A customer signed in on the account page.
    Customer(String),
    /// A Stripe webhook event, by its id.
    StripeEvent(String),
    /// The periodic full sync from Stripe (or `tollbooth sync`, which is the CLI's).
    Reconcile,
    /// The owner's back office, through the admin API, by the label of the token it used.
    Admin(String),
    /// A paid Checkout Session, fulfilled on the welcome page.
    Checkout(String),
    /// The service itself, for work no edge started (none is expected: the label tells a
    /// write that no edge claimed).
    Service,
}

impl Actor {
    /// Runs `work` as this actor.
    pub async fn acting<F: Future>(self, work: F) -> F::Output {
        ACTOR.scope(self, work).await
    }

    /// Who the work running now is for.
    pub fn current() -> Self {
        ACTOR.try_with(Clone::clone).unwrap_or(Self::Service)
    }
}

/// `cli`, `customer:<id>`, `stripe:<event id>`, `reconcile`, `admin:<token label>`,
/// `checkout:<session id>`,
/// `service`: what the audit log's `actor` column holds.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli => f.write_str("cli"),
            Self::Customer(id) => write!(f, "customer:{id}"),
            Self::StripeEvent(id) => write!(f, "stripe:{id}"),
            Self::Reconcile => f.write_str("reconcile"),
            Self::Admin(label) => write!(f, "admin:{label}"),
            Self::Checkout(id) => write!(f, "checkout:{id}"),
            Self::Service => f.write_str("service"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_is_done_as_the_actor_that_started_it() {
        assert_eq!(Actor::current(), Actor::Service);
        let inner = Actor::StripeEvent("evt_1".into())
            .acting(async { Actor::current().to_string() })
            .await;
        assert_eq!(inner, "stripe:evt_1");
        assert_eq!(Actor::current(), Actor::Service, "only inside the work");
    }
}
