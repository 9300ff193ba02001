use clap::Subcommand;

use crate::domain::calendar;
use crate::store::Keys;

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// List every customer with their active keys, grants and subscriptions.
    List,
}

pub async fn run(command: CustomersCommand, store: &dyn Keys) -> anyhow::Result<()> {
    match command {
        CustomersCommand::List => {
            let customers = store.list_customers().await?;
            if customers.is_empty() {
                println!("No customers yet.");
                return Ok(());
            }
            println!(
                "{:<24} {:<32} {:>4} {:>6} {:>5}  created",
                "id", "email", "keys", "grants", "subs"
            );
            for c in customers {
                println!(
                    "{:<24} {:<32} {:>4} {:>6} {:>5}  {}",
                    c.id,
                    c.email.as_deref().unwrap_or("-"),
                    c.active_keys,
                    c.grants,
                    c.subscriptions,
                    calendar::date(c.created_at)
                );
            }
            Ok(())
        }
    }
}
