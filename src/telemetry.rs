//! Logging: compact lines for people, one JSON object per line with `LOG_FORMAT=json`.
//! Nothing logged carries a key, a token, a webhook body or a cookie.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
/// Colours only when `ansi` (the output is a terminal).
pub fn init_subscriber<W>(default_filter: &str, json: bool, ansi: bool, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // A malformed request from a client is logged by the HTTP library as an error, one line
    // per request: a flood for anyone who sends garbage. Off by default; `RUST_LOG` (e.g.
    // `info,actix_http=debug`) shows them.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_filter},actix_http::h1::dispatcher=off"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(ansi && !json);
    // A second call (several tests in one binary) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
