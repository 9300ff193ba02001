//! `GET /`: the owner's plans from the synced catalog.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{html, money};
use crate::domain::{Predictors, PriceType, UsageType, singular, thousands};
use crate::http::error::PageError;
use crate::http::state::AppState;
use crate::ledger::Offer;

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
    let plans = state
        .ledger
        .offers()
        .await?
        .into_iter()
        .map(|offer| card(offer, &state.owner_label))
        .collect();
    let selling = state.ledger.selling();
    html(&PricingPage { selling, plans }, false)
}

fn card(offer: Offer, owner_label: &str) -> PlanCard {
    let rules = &offer.rules;
    let recurring = offer.price_type == PriceType::Recurring;
    let metered = offer.usage_type == UsageType::Metered;
    let interval = match &offer.interval {
        Some((unit, n)) if *n > 1 => format!("{n} {unit}s"),
        Some((unit, _)) => unit.clone(),
        None => String::new(),
    };
    let amount = money(offer.unit_amount, &offer.currency);
    let free = offer.unit_amount == 0 && !metered;
    let unit = rules.unit();
    let price = match (recurring, metered) {
        _ if free => "Free".to_owned(),
        (true, true) => format!("{amount} per {}, billed each {interval}", singular(unit)),
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
            includes.push(format!("{} {unit} per {interval}", thousands(quota)))
        }
        (true, None, _) => includes.push(format!("Unlimited {unit}")),
        (false, _, Some(credits)) => includes.push(format!("{} {unit}", thousands(credits))),
        (false, _, None) => includes.push(format!("Unlimited {unit}")),
    }
    if let Some(days) = rules.duration_days.filter(|_| !recurring) {
        includes.push(format!("Valid for {days} days"));
    }
    if let Some(rate) = rules.rate_limit {
        includes.push(format!(
            "Up to {} {unit} per minute",
            thousands(u64::from(rate))
        ));
    }
    PlanCard {
        price_id: offer.price_id,
        name: offer.name,
        description: offer.description.filter(|d| !d.trim().is_empty()),
        price,
        includes,
        action: match (free, recurring) {
            (true, _) => "Start for free",
            (false, true) => "Subscribe",
            (false, false) => "Buy",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PlanRules;

    fn offer(metadata: &str, metered: bool) -> Offer {
        Offer {
            price_id: "price_1".into(),
            name: "Pro".into(),
            description: None,
            unit_amount: 2_000,
            currency: "usd".into(),
            price_type: PriceType::Recurring,
            usage_type: if metered {
                UsageType::Metered
            } else {
                UsageType::Licensed
            },
            interval: Some(("month".into(), 1)),
            rules: PlanRules::from_metadata(Some(metadata), None).0,
        }
    }

    #[test]
    fn a_plan_is_sold_in_the_unit_it_names() {
        let sessions = card(
            offer(r#"{"quota":"1000","unit":"sessions"}"#, false),
            "@acme",
        );
        assert!(
            sessions
                .includes
                .contains(&"1,000 sessions per month".to_owned())
        );
        let metered = card(offer(r#"{"unit":"runs"}"#, true), "@acme");
        assert_eq!(metered.price, "$20.00 per run, billed each month");
        let plain = card(offer(r#"{"quota":"50"}"#, false), "@acme");
        assert!(
            plain
                .includes
                .contains(&"50 predictions per month".to_owned())
        );
    }
}
