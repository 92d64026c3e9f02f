//! Command line and environment. Every flag has an `OUTBOX_*` variable; a flag given on
//! the command line wins over its variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::chaos::ChaosSpec;

/// The token accepted when no `--token` is configured; it maps to tenant [`DEMO_TENANT`].
pub const DEMO_TOKEN: &str = "demo-token";
/// Tenant of [`DEMO_TOKEN`].
pub const DEMO_TENANT: &str = "demo";

/// `TOKEN=TENANT`, as given to `--token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The bearer token.
    pub token: String,
    /// The tenant it maps to.
    pub tenant: String,
}

impl FromStr for TokenSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (token, tenant) = s.split_once('=').ok_or("expected TOKEN=TENANT")?;
        let (token, tenant) = (token.trim(), tenant.trim());
        if token.is_empty() || tenant.is_empty() {
            return Err("expected TOKEN=TENANT with both parts non-empty".into());
        }
        if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err("a token must be visible ASCII".into());
        }
        Ok(TokenSpec {
            token: token.into(),
            tenant: tenant.into(),
        })
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 7d, 24h, 30m, 90s, 250ms)"))
}

/// Reference server for durable-outbox: dedupes POST /v1/messages on the Idempotency-Key
/// header, with an embedded SQLite store.
#[derive(Debug, Clone, Parser)]
// A later flag overrides an earlier one, so wrappers can append to a base command line.
#[command(name = "outbox-server", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "OUTBOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// SQLite database file; `:memory:` for a throwaway store.
    #[arg(long, env = "OUTBOX_DB", default_value = "outbox.sqlite")]
    pub db: String,

    /// Bearer token and its tenant, TOKEN=TENANT (repeatable; comma-separated in the
    /// variable). Without any, the demo token `demo-token` maps to tenant `demo`.
    #[arg(
        long = "token",
        value_name = "TOKEN=TENANT",
        env = "OUTBOX_TOKENS",
        value_delimiter = ','
    )]
    pub tokens: Vec<TokenSpec>,

    /// How long a key is kept, counted from its first request.
    #[arg(long, env = "OUTBOX_RETENTION", default_value = "7d", value_parser = duration)]
    pub retention: Duration,

    /// How long an in-progress claim holds before a retry may take the key over.
    #[arg(long, env = "OUTBOX_LEASE", default_value = "30s", value_parser = duration)]
    pub lease: Duration,

    /// How often the reaper deletes expired keys.
    #[arg(long, env = "OUTBOX_REAP_INTERVAL", default_value = "10m", value_parser = duration)]
    pub reap_interval: Duration,

    /// Keys deleted per reaper transaction.
    #[arg(long, env = "OUTBOX_REAP_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub reap_batch: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "OUTBOX_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body: usize,

    /// Fault injection, e.g. `fail=0.3,status=503,lost-ack=0.1,latency=50ms`; off by default.
    #[arg(long, env = "OUTBOX_CHAOS", default_value = "off")]
    pub chaos: ChaosSpec,

    /// Seed for the chaos random numbers (reproducible runs); random if absent.
    #[arg(long, env = "OUTBOX_CHAOS_SEED")]
    pub chaos_seed: Option<u64>,

    /// Directory of the demo's static files, served at `/`.
    #[arg(long, env = "OUTBOX_WWW", default_value = "www")]
    pub www: PathBuf,

    /// Directory of the built npm package, served at `/pkg/`.
    #[arg(long, env = "OUTBOX_PKG", default_value = "pkg")]
    pub pkg: PathBuf,

    /// Origin allowed by CORS (repeatable; comma-separated in the variable). Default: any.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "OUTBOX_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Database path or `:memory:`.
    pub db: String,
    /// Bearer token to tenant.
    pub tokens: HashMap<String, String>,
    /// Whether `tokens` is the built-in demo token.
    pub demo_token: bool,
    /// Key retention.
    pub retention: Duration,
    /// Claim lease.
    pub lease: Duration,
    /// Reaper period.
    pub reap_interval: Duration,
    /// Keys per reaper transaction.
    pub reap_batch: usize,
    /// Body limit in bytes.
    pub max_body: usize,
    /// Initial chaos setting.
    pub chaos: ChaosSpec,
    /// Chaos seed.
    pub chaos_seed: Option<u64>,
    /// Static demo directory.
    pub www: PathBuf,
    /// Built package directory.
    pub pkg: PathBuf,
    /// CORS origins; empty means any.
    pub cors_origins: Vec<String>,
}

impl Cli {
    /// Resolves defaults (the demo token) into a [`Config`].
    pub fn into_config(self) -> Config {
        let demo_token = self.tokens.is_empty();
        let tokens = if demo_token {
            HashMap::from([(DEMO_TOKEN.to_owned(), DEMO_TENANT.to_owned())])
        } else {
            self.tokens
                .into_iter()
                .map(|t| (t.token, t.tenant))
                .collect()
        };
        Config {
            listen: self.listen,
            db: self.db,
            tokens,
            demo_token,
            retention: self.retention,
            lease: self.lease,
            reap_interval: self.reap_interval,
            reap_batch: self.reap_batch as usize,
            max_body: self.max_body,
            chaos: self.chaos,
            chaos_seed: self.chaos_seed,
            www: self.www,
            pkg: self.pkg,
            cors_origins: self.cors_origins,
        }
    }
}

impl Config {
    /// Parses command-line style arguments (the first is the program name).
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(Cli::into_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let c = Config::from_args(["outbox-server"]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(
            c.tokens.get(DEMO_TOKEN).map(String::as_str),
            Some(DEMO_TENANT)
        );
        assert!(c.demo_token);
        let c = Config::from_args([
            "x",
            "--token",
            "a=alice",
            "--token",
            "b=bob",
            "--retention",
            "24h",
            "--db",
            ":memory:",
        ])
        .unwrap();
        assert_eq!(c.tokens.len(), 2);
        assert!(!c.demo_token && !c.tokens.contains_key(DEMO_TOKEN));
        assert_eq!(c.retention, Duration::from_secs(86_400));
        assert!(Config::from_args(["x", "--token", "nope"]).is_err());
        assert!(Config::from_args(["x", "--retention", "soon"]).is_err());
        assert!(Config::from_args(["x", "--chaos", "fail=2"]).is_err());
    }
}
