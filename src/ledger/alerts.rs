//! Alerts: a customer's quota or credits reaching a threshold (the plan's `alert_at`, or the
//! customer's own from the account page), resolved when it no longer holds (a new period,
//! credits topped up), and events such as a key rolled. Each fires once, and what it says is
//! queued for the owner's webhook (signed, Standard Webhooks) and the customer's email in the
//! same transaction; [`Ledger::deliver_alerts`] sends the queue, retrying with backoff.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::Ledger;
use crate::domain::{Thresholds, calendar, random_base62, thousands};
use crate::gate::{LimitUse, Status};
use crate::store::{Alerts, Delivered, DeliveryRow, Keys, NewAlert, NewDelivery};

/// Deliveries sent per round, and how long one is claimed while it is sent.
const BATCH: i64 = 50;
const LEASE: i64 = 60;
/// A delivery still failing after this many attempts (about three days of backoff) is given
/// up, with its last error kept.
const ATTEMPTS: i64 = 20;

/// Seconds before the next attempt after `attempts` failures: 10 s, doubling, at most 6 h.
fn backoff(attempts: i64) -> i64 {
    (10i64 << attempts.clamp(0, 12)).min(6 * 3_600)
}

/// What one alert says: its event type, the webhook's data, and the customer's email.
struct Message {
    event_type: String,
    data: Value,
    email: Option<(String, String)>,
}

impl Ledger {
    /// Whether alerts go anywhere (the owner's webhook or email is configured).
    pub fn alerts_on(&self) -> bool {
        self.owner_webhook.is_some() || self.mailer.is_some()
    }

    /// The customer's own thresholds, beside their plans'.
    pub async fn alert_thresholds(&self, customer_id: &str) -> anyhow::Result<Thresholds> {
        let stored = self.db.alert_preference(customer_id).await?;
        Ok(stored
            .and_then(|at| Thresholds::parse(&at).ok())
            .unwrap_or_default())
    }

    /// Sets the customer's own thresholds (empty: none but their plans').
    pub async fn set_alert_thresholds(
        &self,
        customer_id: &str,
        thresholds: Thresholds,
    ) -> anyhow::Result<()> {
        let text = thresholds.to_string();
        let stored = (!thresholds.is_empty()).then_some(text.as_str());
        self.db
            .set_alert_preference(customer_id, stored, crate::clock::unix_now())
            .await
    }

    /// Fires what the use of these customers' plans has reached; `fired` remembers what this
    /// process fired already, so a threshold passed long ago costs no write per round.
    pub async fn check_alerts(
        &self,
        customers: &HashSet<String>,
        own: &HashMap<String, Thresholds>,
        fired: &mut HashSet<String>,
        now: i64,
    ) -> anyhow::Result<usize> {
        let Some(gate) = &self.gate else {
            return Ok(0);
        };
        let mut count = 0;
        for customer in customers {
            count += self.check_subscriptions(customer, fired, now).await?;
            let extra = own.get(customer).copied().unwrap_or_default();
            for limit in gate.limits(customer, now) {
                count += self
                    .check_credits_left(customer, &limit, fired, now)
                    .await?;
                let thresholds = limit.alert_at.with(extra);
                if !limit.in_force || thresholds.is_empty() || limit.limit == 0 {
                    continue;
                }
                for threshold in thresholds.iter().filter(|t| reached(&limit, *t)) {
                    let kind = if limit.credits { "credits" } else { "quota" };
                    let key = format!(
                        "{customer}/{kind}/{}/{threshold}/{}",
                        limit.entitlement_id, limit.period_start
                    );
                    if fired.contains(&key) {
                        continue;
                    }
                    let message = self.limit_message(customer, &limit, threshold, true);
                    let alert = NewAlert {
                        id: format!("alrt_{}", random_base62(20)),
                        customer_id: customer.clone(),
                        kind,
                        subject: limit.entitlement_id.clone(),
                        threshold: i64::from(threshold),
                        period_start: limit.period_start,
                        fired_at: now,
                        detail: message.data.to_string(),
                    };
                    let deliveries = self.deliveries(customer, message, now).await?;
                    if self.db.fire_alert(&alert, &deliveries).await? {
                        count += 1;
                    }
                    fired.insert(key);
                }
            }
        }
        Ok(count)
    }

    /// Fires `credits.low` once when a plan's credits left fall under its
    /// `alert_credits_below`.
    async fn check_credits_left(
        &self,
        customer: &str,
        limit: &LimitUse,
        fired: &mut HashSet<String>,
        now: i64,
    ) -> anyhow::Result<usize> {
        let Some(below) = limit.alert_credits_below.filter(|_| limit.credits) else {
            return Ok(0);
        };
        let left = limit.limit.saturating_sub(limit.used);
        let key = format!("{customer}/credits_low/{}/{below}", limit.entitlement_id);
        if !limit.in_force || left >= below || fired.contains(&key) {
            return Ok(0);
        }
        let message = Message {
            event_type: "credits.low".into(),
            data: json!({
                "customer_id": customer,
                "plan": limit.plan,
                "entitlement": limit.entitlement_id,
                "credits_left": left,
                "below": below,
                "limit": limit.limit,
            }),
            email: Some((
                format!("{}: {} credits left", limit.plan, thousands(left)),
                format!(
                    "Your plan {} has {} of its {} credits left.\n\nBuy more at {}/.\n",
                    limit.plan,
                    thousands(left),
                    thousands(limit.limit),
                    self.public_url
                ),
            )),
        };
        let alert = NewAlert {
            id: format!("alrt_{}", random_base62(20)),
            customer_id: customer.to_owned(),
            kind: "credits_low",
            subject: limit.entitlement_id.clone(),
            threshold: i64::try_from(below).unwrap_or(i64::MAX),
            period_start: 0,
            fired_at: now,
            detail: message.data.to_string(),
        };
        let deliveries = self.deliveries(customer, message, now).await?;
        let fired_now = self.db.fire_alert(&alert, &deliveries).await?;
        fired.insert(key);
        Ok(usize::from(fired_now))
    }

    /// Fires a failed payment (a subscription past due or unpaid: when access ends) and a
    /// subscription that ended (an event), once each.
    async fn check_subscriptions(
        &self,
        customer: &str,
        fired: &mut HashSet<String>,
        now: i64,
    ) -> anyhow::Result<usize> {
        let Some(gate) = &self.gate else {
            return Ok(0);
        };
        let mut count = 0;
        for (item, plan, state) in gate.subscriptions(customer, now) {
            // Ended for good: not a cancellation waiting for the period's end.
            let ended = state
                .ended_at
                .get()
                .or_else(|| (state.status == Status::Canceled).then(|| state.ended_at())?);
            let (kind, since, message) = if let Some(ended) = ended {
                (
                    "ended",
                    ended,
                    self.ended_message(customer, &item, &plan, ended),
                )
            } else if matches!(state.status, Status::PastDue | Status::Unpaid) {
                let since = state.past_due_since.get().unwrap_or(now);
                let ends = match state.status {
                    Status::PastDue => Some(since + gate.past_due_grace()),
                    _ => None,
                };
                (
                    "payment",
                    since,
                    self.payment_message(customer, &item, &plan, ends, true),
                )
            } else {
                continue;
            };
            let key = format!("{customer}/{kind}/{item}/{since}");
            if fired.contains(&key) {
                continue;
            }
            let alert = NewAlert {
                id: format!("alrt_{}", random_base62(20)),
                customer_id: customer.to_owned(),
                kind,
                subject: item.clone(),
                threshold: 0,
                period_start: since,
                fired_at: now,
                detail: message.data.to_string(),
            };
            let deliveries = self.deliveries(customer, message, now).await?;
            if self.db.fire_alert(&alert, &deliveries).await? {
                count += 1;
            }
            fired.insert(key);
        }
        Ok(count)
    }

    fn payment_message(
        &self,
        customer: &str,
        item: &str,
        plan: &str,
        access_ends: Option<i64>,
        failed: bool,
    ) -> Message {
        let data = json!({
            "customer_id": customer,
            "plan": plan,
            "subscription_item": item,
            "access_ends_at": access_ends.map(calendar::rfc3339),
        });
        let until = match access_ends {
            Some(at) => format!(
                "Your access continues until {} UTC; after that, predictions are refused until \
                 the payment goes through.",
                calendar::date_time(at)
            ),
            None => "Predictions are refused until the payment goes through.".into(),
        };
        Message {
            event_type: if failed {
                "payment.failed".into()
            } else {
                "payment.resolved".into()
            },
            data,
            email: failed.then(|| {
                (
                    format!("{plan}: your payment did not go through"),
                    format!(
                        "The last payment for your plan {plan} did not go through. {until}\n\n\
                         Update your payment method at {}/account (Manage billing).\n",
                        self.public_url
                    ),
                )
            }),
        }
    }

    fn ended_message(&self, customer: &str, item: &str, plan: &str, ended: i64) -> Message {
        Message {
            event_type: "subscription.ended".into(),
            data: json!({
                "customer_id": customer,
                "plan": plan,
                "subscription_item": item,
                "ended_at": calendar::rfc3339(ended),
            }),
            email: Some((
                format!("{plan}: your subscription has ended"),
                format!(
                    "Your subscription to {plan} ended on {}. Keys that relied on it no longer \
                     work for it.\n\nChoose a plan again at {}/.\n",
                    calendar::date(ended),
                    self.public_url
                ),
            )),
        }
    }

    /// Resolves the fired alerts of limits that no longer hold: a new period began, credits
    /// were added, or the plan is gone.
    pub async fn resolve_alerts(&self, now: i64) -> anyhow::Result<usize> {
        let Some(gate) = &self.gate else {
            return Ok(0);
        };
        let mut count = 0;
        for alert in self.db.open_alerts().await? {
            if alert.kind == "payment" {
                let still = gate
                    .subscriptions(&alert.customer_id, now)
                    .into_iter()
                    .find(|(item, _, _)| *item == alert.subject);
                let (holds, plan) = match &still {
                    Some((_, plan, s)) => (
                        s.ended_at().is_none()
                            && matches!(s.status, Status::PastDue | Status::Unpaid),
                        plan.clone(),
                    ),
                    None => (false, String::new()),
                };
                if holds {
                    continue;
                }
                let message =
                    self.payment_message(&alert.customer_id, &alert.subject, &plan, None, false);
                let deliveries = self.deliveries(&alert.customer_id, message, now).await?;
                if self.db.resolve_alert(&alert.id, now, &deliveries).await? {
                    count += 1;
                }
                continue;
            }
            let threshold = u8::try_from(alert.threshold).unwrap_or(100);
            let current = gate
                .limits(&alert.customer_id, now)
                .into_iter()
                .find(|l| l.entitlement_id == alert.subject);
            let holds = current.as_ref().is_some_and(|l| {
                l.in_force && l.period_start == alert.period_start && reached(l, threshold)
            });
            if holds {
                continue;
            }
            let message = match &current {
                Some(limit) => self.limit_message(&alert.customer_id, limit, threshold, false),
                None => Message {
                    event_type: format!("{}.threshold_resolved", alert.kind),
                    data: json!({
                        "customer_id": alert.customer_id,
                        "entitlement": alert.subject,
                        "threshold_percent": threshold,
                        "reason": "the plan ended",
                    }),
                    email: None,
                },
            };
            let deliveries = self.deliveries(&alert.customer_id, message, now).await?;
            if self.db.resolve_alert(&alert.id, now, &deliveries).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Tells the owner and the customer that a key was rolled (an event: it fires once and
    /// has nothing to resolve).
    pub(super) async fn alert_key_rolled(
        &self,
        customer_id: &str,
        old_key: &str,
        new_key: &str,
        stops_at: i64,
        now: i64,
    ) -> anyhow::Result<()> {
        if !self.alerts_on() {
            return Ok(());
        }
        let message = Message {
            event_type: "key.rolled".into(),
            data: json!({
                "customer_id": customer_id,
                "key_id": old_key,
                "replaced_by": new_key,
                "old_key_stops_at": calendar::rfc3339(stops_at),
            }),
            email: Some((
                "One of your access keys was replaced".into(),
                format!(
                    "One of your access keys ({old_key}) was replaced by a new one ({new_key}). \
                     The old key stops working at {} UTC.\n\nIf you did not do this, sign in \
                     at {}/account and revoke the keys you do not know.\n",
                    calendar::date_time(stops_at),
                    self.public_url
                ),
            )),
        };
        let alert = NewAlert {
            id: format!("alrt_{}", random_base62(20)),
            customer_id: customer_id.to_owned(),
            kind: "key_rolled",
            subject: old_key.to_owned(),
            threshold: 0,
            period_start: 0,
            fired_at: now,
            detail: message.data.to_string(),
        };
        let deliveries = self.deliveries(customer_id, message, now).await?;
        self.db.fire_alert(&alert, &deliveries).await?;
        Ok(())
    }

    /// Sends the deliveries due now; returns how many were sent.
    pub async fn deliver_alerts(&self, now: i64) -> anyhow::Result<usize> {
        let mut sent = 0;
        for delivery in self.db.claim_deliveries(now, LEASE, BATCH).await? {
            let outcome = self.send(&delivery).await;
            let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
            let done = match &error {
                None => Delivered::Sent,
                Some(error) if delivery.attempts + 1 >= ATTEMPTS => Delivered::GaveUp { error },
                Some(error) => Delivered::Failed {
                    error,
                    retry_at: now + backoff(delivery.attempts),
                },
            };
            match &done {
                Delivered::Sent => sent += 1,
                Delivered::Failed { error, .. } => tracing::info!(
                    delivery = %delivery.id, %error, "An alert could not be delivered; will retry"
                ),
                Delivered::GaveUp { error } => tracing::warn!(
                    delivery = %delivery.id, %error, "An alert could not be delivered; gave up"
                ),
            }
            self.db.delivery_done(&delivery.id, done, now).await?;
        }
        Ok(sent)
    }

    async fn send(&self, delivery: &DeliveryRow) -> anyhow::Result<()> {
        match (delivery.channel.as_str(), &delivery.recipient) {
            ("webhook", _) => {
                let webhook = self
                    .owner_webhook
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("OWNER_WEBHOOK_URL is no longer set"))?;
                // Signed at the moment it is sent, as receivers check.
                let sent_at = crate::clock::unix_now();
                webhook.send(&delivery.id, &delivery.payload, sent_at).await
            }
            ("email", Some(to)) => {
                let mailer = self
                    .mailer
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("SMTP_URL is no longer set"))?;
                let email: Value = serde_json::from_str(&delivery.payload)?;
                let subject = email["subject"].as_str().unwrap_or("About your access");
                let text = email["text"].as_str().unwrap_or_default().to_owned();
                mailer.send(to, subject, text).await
            }
            (channel, _) => anyhow::bail!("no way to deliver on {channel}"),
        }
    }

    /// The messages of one alert: to the owner's webhook, and by email to the customer when
    /// there is an email to send and an address to send it to.
    async fn deliveries(
        &self,
        customer_id: &str,
        message: Message,
        now: i64,
    ) -> anyhow::Result<Vec<NewDelivery>> {
        let mut out = Vec::new();
        let new = |channel, recipient, payload: Value| NewDelivery {
            id: format!("msg_{}", random_base62(24)),
            event_type: message.event_type.clone(),
            channel,
            recipient,
            payload: payload.to_string(),
            created_at: now,
        };
        if self.owner_webhook.is_some() {
            let body = json!({
                "type": message.event_type,
                "timestamp": calendar::rfc3339(now),
                "data": message.data,
            });
            out.push(new("webhook", None, body));
        }
        if let (Some(_), Some((subject, text))) = (&self.mailer, &message.email)
            && let Some(to) = self.db.customer(customer_id).await?.and_then(|c| c.email)
        {
            out.push(new(
                "email",
                Some(to),
                json!({ "subject": subject, "text": text }),
            ));
        }
        Ok(out)
    }

    fn limit_message(
        &self,
        customer_id: &str,
        limit: &LimitUse,
        threshold: u8,
        reached_now: bool,
    ) -> Message {
        let kind = if limit.credits { "credits" } else { "quota" };
        let state = if reached_now { "reached" } else { "resolved" };
        let data = json!({
            "customer_id": customer_id,
            "plan": limit.plan,
            "entitlement": limit.entitlement_id,
            "threshold_percent": threshold,
            "used": limit.used,
            "limit": limit.limit,
            "period_start": (!limit.credits).then(|| calendar::rfc3339(limit.period_start)),
        });
        let (used, total) = (thousands(limit.used), thousands(limit.limit));
        let what = if limit.credits {
            "prediction credits"
        } else {
            "predictions this period"
        };
        let subject = match threshold {
            100 => format!("{}: you have used all your {what}", limit.plan),
            t => format!("{}: you have used {t}% of your {what}", limit.plan),
        };
        let text = format!(
            "You have used {used} of the {total} {what} of your plan {}.\n\nSee your use and \
             your plans at {}/account.\n",
            limit.plan, self.public_url
        );
        Message {
            event_type: format!("{kind}.threshold_{state}"),
            data,
            email: reached_now.then_some((subject, text)),
        }
    }
}

/// Whether `limit`'s use is at or past `threshold` percent of it.
fn reached(limit: &LimitUse, threshold: u8) -> bool {
    u128::from(limit.used) * 100 >= u128::from(limit.limit) * u128::from(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_six_hours() {
        assert_eq!(backoff(0), 10);
        assert_eq!(backoff(1), 20);
        assert_eq!(backoff(5), 320);
        assert_eq!(backoff(19), 6 * 3_600);
    }

    #[test]
    fn a_threshold_is_reached_at_its_exact_percentage() {
        let limit = |used| LimitUse {
            entitlement_id: "gr_1".into(),
            plan: "Pro".into(),
            credits: false,
            limit: 1_000,
            used,
            period_start: 0,
            alert_at: Thresholds::default(),
            alert_credits_below: None,
            in_force: true,
        };
        assert!(!reached(&limit(799), 80));
        assert!(reached(&limit(800), 80));
        assert!(!reached(&limit(999), 100));
        assert!(reached(&limit(1_000), 100));
    }
}
