//! `GET /`: the owner's plans from the synced catalog.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{html, money};
use crate::domain::{PlanRules, Predictors, thousands};
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::store::{Mirror, PlanRow};

#[derive(Template)]
#[template(path = "pricing.html")]
struct PricingPage {
    selling: bool,
    plans: Vec<PlanCard>,
}

struct PlanCard {
    price_id: String,
    name: String,
    description: Option<String>,
    price: String,
    includes: Vec<String>,
    action: &'static str,
}

pub async fn pricing(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let selling = state.syncer.is_some();
    let plans = if selling {
        state
            .store
            .catalog()
            .await?
            .into_iter()
            .map(|row| card(row, &state.owner_label))
            .collect()
    } else {
        Vec::new()
    };
    html(&PricingPage { selling, plans }, false)
}

fn card(row: PlanRow, owner_label: &str) -> PlanCard {
    let (rules, _) =
        PlanRules::from_metadata(Some(&row.product_metadata), Some(&row.price_metadata));
    let recurring = row.price_type == "recurring";
    let metered = row.usage_type.as_deref() == Some("metered");
    let interval = match (
        row.recurring_interval.as_deref(),
        row.recurring_interval_count,
    ) {
        (Some(unit), Some(n)) if n > 1 => format!("{n} {unit}s"),
        (Some(unit), _) => unit.to_owned(),
        _ => String::new(),
    };
    let amount = money(row.unit_amount.unwrap_or(0), &row.currency);
    let price = match (recurring, metered) {
        (true, true) => format!("{amount} per prediction, billed each {interval}"),
        (true, false) => format!("{amount} / {interval}"),
        (false, _) => amount,
    };
    let mut includes = Vec::new();
    includes.push(if rules.predictors == Predictors::all() {
        format!("All predictors of {owner_label}")
    } else {
        format!(
            "Predictors: {}",
            rules.predictors.to_string().replace(',', ", ")
        )
    });
    match (recurring, rules.quota, rules.credits) {
        (true, _, _) if metered => includes.push("Pay for what you use".into()),
        (true, Some(quota), _) => {
            includes.push(format!("{} predictions per {interval}", thousands(quota)))
        }
        (true, None, _) => includes.push("Unlimited predictions".into()),
        (false, _, Some(credits)) => includes.push(format!("{} predictions", thousands(credits))),
        (false, _, None) => includes.push("Unlimited predictions".into()),
    }
    if let Some(days) = rules.duration_days.filter(|_| !recurring) {
        includes.push(format!("Valid for {days} days"));
    }
    if let Some(rate) = rules.rate_limit {
        includes.push(format!(
            "Up to {} predictions per minute",
            thousands(u64::from(rate))
        ));
    }
    PlanCard {
        price_id: row.price_id,
        name: row.name,
        description: row.description.filter(|d| !d.trim().is_empty()),
        price,
        includes,
        action: if recurring { "Subscribe" } else { "Buy" },
    }
}
