//! All configuration, from environment variables, in one struct. Every variable is listed in
//! the configuration table of docs/operations.md; secrets are `SecretString` and never printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::domain::{KeyPrefix, Owner};

#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://tollbooth.db` (default) or `postgres://…`.
    pub database_url: String,
    /// `HOST` (default `0.0.0.0`, as Fly requires) and `PORT` (default 8080).
    pub host: String,
    pub port: u16,
    /// `FXN_OWNER`: the Function username whose predictors are sold; unset accepts all owners.
    pub owner: Option<Owner>,
    /// `AUTHORIZE_TOKEN`: the secret path segment of the authorize URL; generated and kept in
    /// the database when unset.
    pub authorize_token: Option<SecretString>,
    /// `PUBLIC_URL`: where people reach this service (default `http://localhost:{PORT}`, with
    /// the port actually bound when `PORT=0` asks for any free one).
    pub public_url: String,
    pub public_url_is_default: bool,
    /// `KEY_PREFIX` (default `tb`).
    pub key_prefix: KeyPrefix,
    /// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` (comma-separated to roll secrets),
    /// `STRIPE_API_BASE` (default `https://api.stripe.com`).
    pub stripe_secret_key: Option<SecretString>,
    pub stripe_webhook_secrets: Vec<SecretString>,
    pub stripe_api_base: String,
    /// `SESSION_SECRET`: signs the account page's cookie.
    pub session_secret: Option<SecretString>,
    /// `STRIPE_WEBHOOK_TOLERANCE` (default `300s`): how old a signed webhook may be.
    pub webhook_tolerance: Duration,
    /// `RECONCILE_EVERY` (default `6h`): how often the full sync from Stripe runs.
    pub reconcile_every: Duration,
    /// `PAST_DUE_GRACE` (default `3d`): how long a past-due subscription keeps working.
    pub past_due_grace: Duration,
    /// `USAGE_FLUSH_INTERVAL` (default `1s`): the most counted use a crash can lose.
    pub usage_flush_interval: Duration,
    /// `LEDGER_POLL_INTERVAL` (default `200ms`): how often other processes' changes are
    /// looked for.
    pub ledger_poll_interval: Duration,
    /// `WORKERS`: HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// `METRICS_ADDR` (e.g. `0.0.0.0:9091`): where Prometheus metrics are served, on their own
    /// listener so they are never public with the service; off when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// `ADMIN_TOKEN`: the admin API's bearer tokens, `label:secret` separated by commas (a
    /// bare secret is labelled `admin`); the label names who acted in the audit log. The API
    /// is off (every admin path 404) when unset.
    pub admin_tokens: Vec<AdminToken>,
    /// `CLIENT_IP_HEADER` (e.g. `Fly-Client-IP`): the header the proxy in front sets to the
    /// client's address, for the admin API's per-address limit on failed sign-ins; unset, the
    /// connection's address is used.
    pub client_ip_header: Option<String>,
    /// `LOG_FORMAT`: `json` for one JSON object per line; anything else is human-readable.
    pub log_json: bool,
    /// `SMTP_URL` (`smtps://user:password@host:465`, or `smtp://…:587?tls=required`) and
    /// `EMAIL_FROM`: email to customers (sign-in links); off when unset.
    pub email: Option<EmailSettings>,
    /// `OWNER_WEBHOOK_URL` and `OWNER_WEBHOOK_SECRET` (`whsec_…`): where alerts are POSTed to
    /// the owner, signed the Standard Webhooks way; off when unset.
    pub owner_webhook: Option<(String, SecretString)>,
    /// `USAGE_JOURNAL`: where counted use waits on local disk while the database cannot be
    /// written (default: beside the SQLite file; for PostgreSQL, `tollbooth-usage-<database>.
    /// journal` in the working directory).
    pub usage_journal: PathBuf,
}

/// Where email goes out, and from whom.
#[derive(Clone)]
pub struct EmailSettings {
    pub smtp_url: SecretString,
    pub from: String,
}

/// One admin API token: who holds it (for the audit log) and the secret itself.
#[derive(Clone)]
pub struct AdminToken {
    pub label: String,
    pub secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    name: &'static str,
    problem: String,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `var`, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let secret = |name: &str| get(name).map(SecretString::from);
        let fail = |name: &'static str, problem: String| ConfigError { name, problem };
        let port = match get("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| fail("PORT", format!("{p:?} is not a port number")))?,
            None => 8080,
        };
        // Each duration within the range where it means something: a flush interval of 0
        // spins, one of ten days is a crash bound of ten days.
        let duration = |name: &'static str, default: Duration, range: (Duration, Duration)| {
            let Some(text) = get(name) else {
                return Ok(default);
            };
            let value = parse_duration(&text).ok_or_else(|| {
                fail(
                    name,
                    format!("{text:?} is not a duration such as 500ms, 30s, 6h or 3d"),
                )
            })?;
            if value < range.0 || value > range.1 {
                return Err(fail(
                    name,
                    format!(
                        "{text:?} is out of range: give between {} and {}",
                        show_duration(range.0),
                        show_duration(range.1)
                    ),
                ));
            }
            Ok(value)
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://tollbooth.db".into());
        check_database_url(&database_url).map_err(|problem| fail("DATABASE_URL", problem))?;
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let owner = get("FXN_OWNER")
            .map(|o| Owner::parse(&o))
            .transpose()
            .map_err(|e| fail("FXN_OWNER", e.to_string()))?;
        let key_prefix = KeyPrefix::parse(&get("KEY_PREFIX").unwrap_or_else(|| "tb".into()))
            .map_err(|e| fail("KEY_PREFIX", e))?;
        let public_url_is_default = get("PUBLIC_URL").is_none();
        let public_url = get("PUBLIC_URL")
            .unwrap_or_else(|| format!("http://localhost:{port}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(fail(
                "PUBLIC_URL",
                format!("{public_url:?} must start with http:// or https://"),
            ));
        }
        if let Some(token) = get("AUTHORIZE_TOKEN")
            && (token.len() < 16
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(fail(
                "AUTHORIZE_TOKEN",
                "must be at least 16 letters, digits, '-' or '_' (try: openssl rand -hex 32)"
                    .into(),
            ));
        }
        let workers = get("WORKERS")
            .map(|w| {
                w.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| fail("WORKERS", format!("{w:?} is not a positive number")))
            })
            .transpose()?;
        let metrics_addr = get("METRICS_ADDR")
            .map(|a| {
                a.parse().map_err(|_| {
                    fail(
                        "METRICS_ADDR",
                        format!("{a:?} is not an address and port such as 0.0.0.0:9091"),
                    )
                })
            })
            .transpose()?;
        let admin_tokens = get("ADMIN_TOKEN")
            .map(|tokens| parse_admin_tokens(&tokens))
            .transpose()
            .map_err(|problem| fail("ADMIN_TOKEN", problem))?
            .unwrap_or_default();
        let client_ip_header = get("CLIENT_IP_HEADER");
        if let Some(header) = &client_ip_header
            && actix_web::http::header::HeaderName::try_from(header.as_str()).is_err()
        {
            return Err(fail(
                "CLIENT_IP_HEADER",
                format!("{header:?} is not a header name such as Fly-Client-IP"),
            ));
        }
        let email = match (secret("SMTP_URL"), get("EMAIL_FROM")) {
            (None, None) => None,
            (Some(url), Some(from)) => {
                let scheme_ok = ["smtp://", "smtps://"]
                    .iter()
                    .any(|s| url.expose_secret().starts_with(s));
                if !scheme_ok {
                    return Err(fail(
                        "SMTP_URL",
                        "must start with smtps:// (TLS) or smtp:// (add ?tls=required for \
                         STARTTLS); the value is not shown"
                            .into(),
                    ));
                }
                if from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(fail(
                        "EMAIL_FROM",
                        format!("{from:?} is not an address such as \"Acme <billing@acme.dev>\""),
                    ));
                }
                Some(EmailSettings {
                    smtp_url: url,
                    from,
                })
            }
            (Some(_), None) => {
                return Err(fail(
                    "EMAIL_FROM",
                    "must be set with SMTP_URL: the address emails come from, such as \
                     \"Acme <billing@acme.dev>\""
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(fail(
                    "SMTP_URL",
                    "must be set with EMAIL_FROM: the SMTP server emails go through".into(),
                ));
            }
        };
        let owner_webhook = match (get("OWNER_WEBHOOK_URL"), secret("OWNER_WEBHOOK_SECRET")) {
            (None, None) => None,
            (Some(url), Some(secret)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(fail(
                        "OWNER_WEBHOOK_URL",
                        format!("{url:?} must start with https:// (or http://)"),
                    ));
                }
                if crate::notify::webhook::secret_bytes(secret.expose_secret()).is_none() {
                    return Err(fail(
                        "OWNER_WEBHOOK_SECRET",
                        "must be whsec_ followed by at least 16 bytes in base64 (try: echo \
                         whsec_$(openssl rand -base64 32)); the value is not shown"
                            .into(),
                    ));
                }
                Some((url, secret))
            }
            (Some(_), None) => {
                return Err(fail(
                    "OWNER_WEBHOOK_SECRET",
                    "must be set with OWNER_WEBHOOK_URL: the key alerts are signed with".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(fail(
                    "OWNER_WEBHOOK_URL",
                    "must be set with OWNER_WEBHOOK_SECRET: where alerts are sent".into(),
                ));
            }
        };
        Ok(Self {
            database_url: database_url.clone(),
            host: get("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port,
            owner,
            authorize_token: secret("AUTHORIZE_TOKEN"),
            public_url,
            public_url_is_default,
            key_prefix,
            stripe_secret_key: secret("STRIPE_SECRET_KEY"),
            stripe_webhook_secrets: get("STRIPE_WEBHOOK_SECRET")
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| SecretString::from(s.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            stripe_api_base: get("STRIPE_API_BASE")
                .unwrap_or_else(|| "https://api.stripe.com".into())
                .trim_end_matches('/')
                .to_owned(),
            session_secret: secret("SESSION_SECRET"),
            webhook_tolerance: duration(
                "STRIPE_WEBHOOK_TOLERANCE",
                secs(300),
                (secs(1), secs(3_600)),
            )?,
            reconcile_every: duration(
                "RECONCILE_EVERY",
                secs(6 * 3_600),
                (secs(60), secs(30 * 86_400)),
            )?,
            past_due_grace: duration(
                "PAST_DUE_GRACE",
                secs(3 * 86_400),
                (secs(0), secs(60 * 86_400)),
            )?,
            usage_flush_interval: duration("USAGE_FLUSH_INTERVAL", secs(1), (ms(10), secs(3_600)))?,
            ledger_poll_interval: duration("LEDGER_POLL_INTERVAL", ms(200), (ms(10), secs(3_600)))?,
            workers,
            metrics_addr,
            admin_tokens,
            client_ip_header,
            log_json: get("LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
            email,
            owner_webhook,
            usage_journal: get("USAGE_JOURNAL")
                .map(PathBuf::from)
                .unwrap_or_else(|| default_journal(&database_url)),
        })
    }

    /// What serving needs beyond what every command needs: Stripe either off or whole. With
    /// the secret key alone, Stripe's events would all be refused and the ledger would hear of
    /// payments only at each reconcile; with the webhook secret alone, nothing could sell.
    pub fn check_for_serving(&self) -> Result<(), ConfigError> {
        match (
            self.stripe_secret_key.is_some(),
            self.stripe_webhook_secrets.is_empty(),
        ) {
            (true, true) => Err(ConfigError {
                name: "STRIPE_WEBHOOK_SECRET",
                problem: "must be set with STRIPE_SECRET_KEY: the signing secret (whsec_…) of your webhook endpoint at <PUBLIC_URL>/stripe/webhook; without it every Stripe event is refused"
                    .into(),
            }),
            (false, false) => Err(ConfigError {
                name: "STRIPE_SECRET_KEY",
                problem: "must be set with STRIPE_WEBHOOK_SECRET: events are re-read from Stripe's API, which needs the secret key (or unset both to run without Stripe)"
                    .into(),
            }),
            _ => Ok(()),
        }
    }

    /// A Stripe client when `STRIPE_SECRET_KEY` is set.
    pub fn stripe_api(&self) -> anyhow::Result<Option<crate::stripe::StripeApi>> {
        self.stripe_secret_key
            .as_ref()
            .map(|key| crate::stripe::StripeApi::new(key, &self.stripe_api_base))
            .transpose()
    }

    /// The database URL with any password replaced, for messages and logs.
    pub fn database_display(&self) -> String {
        redact_url_password(&self.database_url)
    }
}

/// `sqlite://FILE` (or `sqlite:FILE`) or `postgres://…` (or `postgresql://…`), nothing else:
/// a typo must not become a new SQLite file named after it.
fn check_database_url(url: &str) -> Result<(), String> {
    let shown = redact_url_password(url);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let file = rest.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or_default();
        return if file.is_empty() {
            Err(format!(
                "{shown:?} names no file: use sqlite://FILE, e.g. sqlite://tollbooth.db"
            ))
        } else {
            Ok(())
        };
    }
    let problem = match url.split_once("://") {
        Some((scheme, _)) => format!("{shown:?} is not supported (scheme {scheme:?})"),
        None => format!("{shown:?} is not a database URL"),
    };
    Err(format!(
        "{problem}: use sqlite://FILE (e.g. sqlite://tollbooth.db) or \
         postgres://USER:PASSWORD@HOST:5432/DATABASE"
    ))
}

/// The usage journal's default place: beside the SQLite file (on the same volume), or named
/// after the PostgreSQL database in the working directory.
fn default_journal(database_url: &str) -> PathBuf {
    let without_query = database_url.split('?').next().unwrap_or_default();
    match without_query.strip_prefix("sqlite:") {
        Some(file) => PathBuf::from(format!("{}.usage-journal", file.trim_start_matches("//"))),
        None => {
            let database = without_query.rsplit('/').next().unwrap_or("tollbooth");
            let safe: String = database
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            PathBuf::from(format!("tollbooth-usage-{safe}.journal"))
        }
    }
}

/// `500ms`, `30s`, `15m`, `6h`, `3d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// `500ms`, `30s`, `6h`, `3d`: the largest unit that shows it whole.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// `label:secret,…` or a bare secret (labelled `admin`). Secrets are at least 16 letters,
/// digits, `-` or `_`, as the authorize token; labels are short and unique.
fn parse_admin_tokens(text: &str) -> Result<Vec<AdminToken>, String> {
    let mut tokens: Vec<AdminToken> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (label, secret) = entry.split_once(':').unwrap_or(("admin", entry));
        let label = label.trim();
        let label_ok = !label.is_empty()
            && label.len() <= 40
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !label_ok {
            return Err(format!(
                "the label {label:?} must be 1 to 40 letters, digits, '-', '_' or '.' (as in backoffice:<secret>)"
            ));
        }
        let secret = secret.trim();
        if secret.len() < 16
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "the secret of {label:?} must be at least 16 letters, digits, '-' or '_' (try: openssl rand -hex 32)"
            ));
        }
        if tokens.iter().any(|t| t.label == label) {
            return Err(format!("the label {label:?} is given twice"));
        }
        tokens.push(AdminToken {
            label: label.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        });
    }
    Ok(tokens)
}

/// Shows what is configured without showing any secret.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<SecretString>| if s.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("Settings")
            .field("database_url", &self.database_display())
            .field("host", &self.host)
            .field("port", &self.port)
            .field("owner", &self.owner)
            .field("authorize_token", &set(&self.authorize_token))
            .field("public_url", &self.public_url)
            .field("key_prefix", &self.key_prefix)
            .field("stripe_secret_key", &set(&self.stripe_secret_key))
            .field("stripe_webhook_secrets", &self.stripe_webhook_secrets.len())
            .field("stripe_api_base", &self.stripe_api_base)
            .field("session_secret", &set(&self.session_secret))
            .field("webhook_tolerance", &self.webhook_tolerance)
            .field("reconcile_every", &self.reconcile_every)
            .field("past_due_grace", &self.past_due_grace)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("ledger_poll_interval", &self.ledger_poll_interval)
            .field("workers", &self.workers)
            .field("metrics_addr", &self.metrics_addr)
            .field(
                "admin_tokens",
                &self
                    .admin_tokens
                    .iter()
                    .map(|t| t.label.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("client_ip_header", &self.client_ip_header)
            .field("log_json", &self.log_json)
            .field("email_from", &self.email.as_ref().map(|e| e.from.as_str()))
            .field(
                "smtp_url",
                &if self.email.is_some() {
                    "[set]"
                } else {
                    "[unset]"
                },
            )
            .field("usage_journal", &self.usage_journal)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_serve_sqlite_on_8080() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, "sqlite://tollbooth.db");
        assert_eq!(s.port, 8080);
        assert_eq!(s.public_url, "http://localhost:8080");
        assert_eq!(s.key_prefix.as_ref(), "tb");
        assert!(s.owner.is_none() && s.authorize_token.is_none() && s.stripe_secret_key.is_none());
        assert_eq!(s.usage_flush_interval, Duration::from_secs(1));
    }

    #[test]
    fn debug_output_masks_every_secret() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/tb"),
            ("AUTHORIZE_TOKEN", "tok_0123456789abcdef"),
            ("STRIPE_SECRET_KEY", "sk_test_secretvalue"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_one,whsec_two"),
            ("ADMIN_TOKEN", "admin-secret-value"),
            ("SESSION_SECRET", "session-secret-value"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        for secret in [
            "hunter2",
            "tok_0123456789abcdef",
            "sk_test_secretvalue",
            "whsec_one",
            "admin-secret-value",
            "session-secret-value",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(
            shown.contains("postgres://app:***@db.internal:5432/tb"),
            "{shown}"
        );
        assert_eq!(s.stripe_webhook_secrets.len(), 2);
    }

    #[test]
    fn email_is_off_unless_both_its_settings_are_given_and_never_shows_the_password() {
        assert!(settings(&[]).unwrap().email.is_none());
        let on = settings(&[
            ("SMTP_URL", "smtps://mailer:pa55word@smtp.example.com:465"),
            ("EMAIL_FROM", "Acme <billing@acme.dev>"),
        ])
        .unwrap();
        assert_eq!(on.email.as_ref().unwrap().from, "Acme <billing@acme.dev>");
        assert!(!format!("{on:?}").contains("pa55word"));
        for (vars, says) in [
            (vec![("SMTP_URL", "smtp://h:25")], "EMAIL_FROM: must be set"),
            (vec![("EMAIL_FROM", "a@b.dev")], "SMTP_URL: must be set"),
            (
                vec![
                    ("SMTP_URL", "http://u:pa55word@h"),
                    ("EMAIL_FROM", "a@b.dev"),
                ],
                "SMTP_URL: must start with smtps://",
            ),
            (
                vec![("SMTP_URL", "smtp://h:25"), ("EMAIL_FROM", "billing")],
                "EMAIL_FROM: \"billing\" is not an address",
            ),
        ] {
            let e = settings(&vars).err().unwrap().to_string();
            assert!(e.starts_with(says), "{vars:?}: {e}");
            assert!(!e.contains("pa55word"), "{e}");
        }
    }

    #[test]
    fn admin_tokens_are_labelled_checked_and_off_when_unset() {
        assert!(settings(&[]).unwrap().admin_tokens.is_empty());
        let bare = settings(&[("ADMIN_TOKEN", "0123456789abcdef0123")]).unwrap();
        assert_eq!(bare.admin_tokens.len(), 1);
        assert_eq!(bare.admin_tokens[0].label, "admin");
        let two = settings(&[(
            "ADMIN_TOKEN",
            "backoffice:0123456789abcdef0123, ci:fedcba9876543210fedc",
        )])
        .unwrap();
        let labels: Vec<_> = two.admin_tokens.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["backoffice", "ci"]);
        for (value, says) in [
            ("short", "at least 16"),
            (
                "a:0123456789abcdef0123,a:fedcba9876543210fedc",
                "given twice",
            ),
            ("bad label:0123456789abcdef0123", "must be 1 to 40"),
            ("0123456789abcdef 0123", "at least 16"),
        ] {
            let e = settings(&[("ADMIN_TOKEN", value)])
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.starts_with("ADMIN_TOKEN: ") && e.contains(says),
                "{value}: {e}"
            );
        }
        let e = settings(&[("CLIENT_IP_HEADER", "Fly Client IP")])
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("CLIENT_IP_HEADER: "), "{e}");
    }

    #[test]
    fn metrics_are_off_unless_metrics_addr_names_an_address_and_port() {
        assert_eq!(settings(&[]).unwrap().metrics_addr, None);
        let on = settings(&[("METRICS_ADDR", "0.0.0.0:9091")]).unwrap();
        assert_eq!(on.metrics_addr, Some("0.0.0.0:9091".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("PORT", "eighty"),
            ("FXN_OWNER", "not a name"),
            ("KEY_PREFIX", "TB"),
            ("PUBLIC_URL", "example.com"),
            ("AUTHORIZE_TOKEN", "short"),
            ("USAGE_FLUSH_INTERVAL", "soon"),
            ("WORKERS", "0"),
            ("METRICS_ADDR", "9091"),
        ];
        for (name, value) in cases {
            let error = settings(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{name}={value}: {error}");
        }
    }

    #[test]
    fn a_database_url_that_is_not_sqlite_or_postgres_is_refused_naming_the_variable() {
        for (url, says) in [
            ("notaurl", "is not a database URL"),
            ("postgress://u@h/db", "scheme \"postgress\""),
            ("mysql://u:secret@h/db", "scheme \"mysql\""),
            ("sqlite://", "names no file"),
        ] {
            let error = settings(&[("DATABASE_URL", url)]).unwrap_err().to_string();
            assert!(error.starts_with("DATABASE_URL"), "{url}: {error}");
            assert!(error.contains(says), "{url}: {error}");
            assert!(error.contains("sqlite://"), "says what to use: {error}");
            assert!(!error.contains("secret"), "no password shown: {error}");
        }
        for url in [
            "sqlite://t.db",
            "sqlite:t.db",
            "postgresql://h/db",
            "postgres://h/db",
        ] {
            assert!(settings(&[("DATABASE_URL", url)]).is_ok(), "{url}");
        }
    }

    #[test]
    fn stripe_half_configured_is_refused_for_serving_naming_what_is_missing() {
        let key_only = settings(&[("STRIPE_SECRET_KEY", "sk_test_1")]).unwrap();
        let error = key_only.check_for_serving().unwrap_err().to_string();
        assert!(error.starts_with("STRIPE_WEBHOOK_SECRET"), "{error}");
        let secret_only = settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_1")]).unwrap();
        let error = secret_only.check_for_serving().unwrap_err().to_string();
        assert!(error.starts_with("STRIPE_SECRET_KEY"), "{error}");
        assert!(settings(&[]).unwrap().check_for_serving().is_ok());
    }

    #[test]
    fn zero_and_absurd_durations_are_refused_naming_the_variable_and_the_range() {
        let cases = [
            ("USAGE_FLUSH_INTERVAL", "0s", "between 10ms and 1h"),
            ("LEDGER_POLL_INTERVAL", "0s", "between 10ms and 1h"),
            ("RECONCILE_EVERY", "0", "between 1m and 30d"),
            ("STRIPE_WEBHOOK_TOLERANCE", "0s", "between 1s and 1h"),
            ("USAGE_FLUSH_INTERVAL", "10d", "between 10ms and 1h"),
            ("PAST_DUE_GRACE", "400d", "between 0s and 60d"),
        ];
        for (name, value, range) in cases {
            let error = settings(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{name}={value}: {error}");
            assert!(error.contains(range), "{name}={value}: {error}");
        }
        let edge = settings(&[("PAST_DUE_GRACE", "0s"), ("USAGE_FLUSH_INTERVAL", "1h")]).unwrap();
        assert_eq!(edge.past_due_grace, Duration::ZERO, "no grace is a choice");
    }

    #[test]
    fn the_usage_journal_sits_beside_the_sqlite_file_or_is_named_after_the_database() {
        let sqlite = settings(&[("DATABASE_URL", "sqlite:///data/tollbooth.db")]).unwrap();
        assert_eq!(
            sqlite.usage_journal,
            PathBuf::from("/data/tollbooth.db.usage-journal")
        );
        let pg = settings(&[(
            "DATABASE_URL",
            "postgres://u:p@db.internal/ledger?sslmode=disable",
        )])
        .unwrap();
        assert_eq!(
            pg.usage_journal,
            PathBuf::from("tollbooth-usage-ledger.journal")
        );
    }

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("6h"), Some(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("3d"), Some(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("3 weeks"), None);
    }
}
