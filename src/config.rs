//! Typed settings: the built-in `config/default.toml`, an optional file named
//! by `WAGATE_CONFIG`, then `WAGATE_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {}", describe(.0))]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: WAGATE_CONFIG names {0}, which does not exist")]
    MissingFile(PathBuf),
    #[error("configuration: setting `{setting}`: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// Names each failing setting the way this file's keys are written
/// (`database.max_connections`), whichever source supplied it.
fn describe(err: &figment::Error) -> String {
    err.clone()
        .into_iter()
        .map(|e| {
            let setting = e.path.join(".").to_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if setting.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("setting `{setting}`: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_key: String,
    pub log: String,
    pub log_format: LogFormat,
    pub shutdown_grace_secs: u64,
    pub allow_private_targets: bool,
    pub allowed_targets: Vec<ipnet::IpNet>,
    /// Base64 of the 32-byte key that seals secrets at rest; empty for none.
    pub encryption_key: String,
    /// Keys that only open values (after a rotation), in the same form.
    pub previous_encryption_keys: crate::sealing::KeyList,
    pub database: DatabaseSettings,
    pub api: ApiSettings,
    pub whatsapp: WhatsAppSettings,
    pub messaging: MessagingSettings,
    pub webhooks: WebhookSettings,
    pub scheduler: SchedulerSettings,
    pub metrics: MetricsSettings,
    pub streams: StreamSettings,
    pub media: MediaSettings,
    pub messages: MessagesSettings,
    pub cluster: crate::cluster::ClusterSettings,
}

/// The message history: how long its rows are kept.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesSettings {
    /// Days sent and received messages (and poll votes) are kept; 0 keeps
    /// them, unless the older `scheduler.message_retention_days` is set.
    pub retention_days: u64,
}

impl Settings {
    /// Days message rows are kept, 0 for ever: `messages.retention_days`,
    /// else the older `scheduler.message_retention_days`.
    pub fn message_retention_days(&self) -> u64 {
        match self.messages.retention_days {
            0 => self.scheduler.message_retention_days,
            days => days,
        }
    }
}

/// Inbound media: where files go, when they are fetched, how long kept.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Folder of the local media store; empty: `media` beside the SQLite
    /// file, or `./data/media`.
    pub dir: String,
    pub download: MediaDownload,
    pub max_inbound_bytes: u64,
    /// Downloads at once in this process.
    pub concurrency: usize,
    /// Days files and rows are kept; 0 keeps them forever.
    pub retention_days: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaDownload {
    /// As soon as the message is committed.
    Eager,
    /// On the first request for it.
    Lazy,
}

impl Settings {
    /// The local media store's folder.
    pub fn media_dir(&self) -> PathBuf {
        if !self.media.dir.is_empty() {
            return PathBuf::from(&self.media.dir);
        }
        match self.sqlite_path().and_then(Path::parent) {
            Some(parent) if !parent.as_os_str().is_empty() => parent.join("media"),
            _ => PathBuf::from("data/media"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// Seconds between heartbeats (and key re-checks) on an event stream.
    pub heartbeat_secs: f64,
}

impl StreamSettings {
    /// The heartbeat period, never below 10 ms.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs.clamp(0.01, 3600.0))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// A second address serving `/metrics` without a key; none when unset.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub reconnect_cron: String,
    pub reconnect_after_secs: u64,
    pub reconnect_backoff_max_secs: u64,
    pub retention_cron: String,
    pub webhook_sweep_cron: String,
    pub message_retention_days: u64,
    pub not_ready_while_resuming: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub dispatcher: bool,
    pub request_timeout_secs: f64,
    pub max_response_body_bytes: usize,
    pub retry_schedule_secs: Vec<f64>,
    pub retry_jitter: f64,
    pub retry_after_max_secs: f64,
    pub disable_after_failing_secs: u64,
    pub rotation_overlap_secs: u64,
    pub max_in_flight: usize,
    pub max_in_flight_per_webhook: usize,
    pub initial_in_flight_per_webhook: usize,
    pub queue_per_webhook: usize,
    pub slow_response_secs: f64,
    pub claim_batch: usize,
    pub lease_secs: f64,
    pub event_retention_days: u64,
    pub dead_retention_days: u64,
    pub sweep_interval_secs: f64,
}

impl WebhookSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_secs)
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs_f64(self.sweep_interval_secs)
    }

    pub fn slow_response(&self) -> Duration {
        Duration::from_secs_f64(self.slow_response_secs)
    }

    pub fn retry_after_max(&self) -> Duration {
        Duration::from_secs_f64(self.retry_after_max_secs)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| ConfigError::Invalid {
            setting,
            reason: reason.to_owned(),
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.request_timeout_secs) {
            return Err(invalid("webhooks.request_timeout_secs", "must be positive"));
        }
        if self.retry_schedule_secs.is_empty()
            || self
                .retry_schedule_secs
                .iter()
                .any(|d| !d.is_finite() || *d < 0.0)
        {
            return Err(invalid(
                "webhooks.retry_schedule_secs",
                "must list at least one delay, none negative",
            ));
        }
        if !(0.0..1.0).contains(&self.retry_jitter) {
            return Err(invalid("webhooks.retry_jitter", "must be in [0, 1)"));
        }
        if !self.retry_after_max_secs.is_finite() || self.retry_after_max_secs < 0.0 {
            return Err(invalid(
                "webhooks.retry_after_max_secs",
                "must not be negative",
            ));
        }
        if self.max_in_flight == 0
            || self.max_in_flight_per_webhook == 0
            || self.initial_in_flight_per_webhook == 0
            || self.claim_batch == 0
        {
            return Err(invalid(
                "webhooks.max_in_flight",
                "max_in_flight, max_in_flight_per_webhook, initial_in_flight_per_webhook \
                 and claim_batch must be at least 1",
            ));
        }
        if !positive(self.slow_response_secs) {
            return Err(invalid("webhooks.slow_response_secs", "must be positive"));
        }
        if !positive(self.lease_secs) || self.lease_secs <= self.request_timeout_secs {
            return Err(invalid(
                "webhooks.lease_secs",
                "must exceed webhooks.request_timeout_secs",
            ));
        }
        if self.event_retention_days > 36_500 {
            return Err(invalid(
                "webhooks.event_retention_days",
                "must be at most 36500",
            ));
        }
        if !positive(self.sweep_interval_secs) {
            return Err(invalid("webhooks.sweep_interval_secs", "must be positive"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppSettings {
    pub ws_url: String,
    pub answer_timeout_secs: u64,
    pub resume_concurrency: usize,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingSettings {
    pub default_region: String,
    pub number_cache_ttl_secs: u64,
    pub max_media_bytes: u64,
    pub idempotency_ttl_secs: u64,
    pub media_fetch_timeout_secs: u64,
    pub pacing: crate::messaging::pacing::PacingSettings,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    pub default_page_size: u64,
    pub max_page_size: u64,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: u32,
}

// The admin key and the database URL (which may carry a password) stay out
// of debug output.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("admin_key", &"<redacted>")
            .field("log", &self.log)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    /// The built-in defaults alone. They are valid by construction (a unit
    /// test holds them to it), so a failure here is a build defect.
    fn default() -> Self {
        Self::defaults_figment()
            .extract()
            .unwrap_or_else(|e| panic!("config/default.toml is invalid: {e}"))
    }
}

impl Settings {
    /// Loads settings from the defaults, `WAGATE_CONFIG` and the process
    /// environment, then validates them.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment()?)
    }

    /// The built-in defaults alone, for callers (tests) that layer their own
    /// values on top without reading the process environment.
    pub fn defaults_figment() -> Figment {
        Figment::from(Toml::string(DEFAULTS))
    }

    fn figment() -> Result<Figment, ConfigError> {
        let mut figment = Self::defaults_figment();
        if let Ok(path) = std::env::var("WAGATE_CONFIG") {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path));
            }
            figment = figment.merge(Toml::file(path));
        }
        Ok(figment
            .merge(
                Env::prefixed("WAGATE_")
                    .ignore(&["CONFIG", "CLUSTER_SECRET"])
                    .split("__")
                    .lowercase(true),
            )
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(
                Env::raw()
                    .only(&["WAGATE_CLUSTER_SECRET"])
                    .map(|_| "cluster.secret".into()),
            ))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| ConfigError::Invalid {
            setting,
            reason: reason.to_owned(),
        };
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite: or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.api.default_page_size == 0 || self.api.default_page_size > self.api.max_page_size {
            return Err(invalid(
                "api.default_page_size",
                "must be between 1 and api.max_page_size",
            ));
        }
        if !self.api.rate_limit_per_sec.is_finite() || self.api.rate_limit_per_sec < 0.0 {
            return Err(invalid(
                "api.rate_limit_per_sec",
                "must be 0 (off) or positive",
            ));
        }
        let ws = &self.whatsapp.ws_url;
        if !(ws.is_empty() || ws.starts_with("ws://") || ws.starts_with("wss://")) {
            return Err(invalid(
                "whatsapp.ws_url",
                "must be empty or a ws:// or wss:// URL",
            ));
        }
        if self.whatsapp.answer_timeout_secs == 0 {
            return Err(invalid(
                "whatsapp.answer_timeout_secs",
                "must be at least 1",
            ));
        }
        let region = &self.messaging.default_region;
        if !region.is_empty() && crate::messaging::phone::region(region).is_none() {
            return Err(invalid(
                "messaging.default_region",
                "must be empty or an ISO 3166 region code such as ID",
            ));
        }
        if self.messaging.media_fetch_timeout_secs == 0 {
            return Err(invalid(
                "messaging.media_fetch_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.messaging.max_media_bytes == 0 {
            return Err(invalid("messaging.max_media_bytes", "must be at least 1"));
        }
        self.webhooks.validate()?;
        self.cluster.validate()?;
        if self.media.concurrency == 0 {
            return Err(invalid("media.concurrency", "must be at least 1"));
        }
        if self.media.max_inbound_bytes == 0 {
            return Err(invalid("media.max_inbound_bytes", "must be at least 1"));
        }
        if self.messages.retention_days > 36_500 {
            return Err(invalid("messages.retention_days", "must be at most 36500"));
        }
        if self.media.retention_days > 36_500 {
            return Err(invalid("media.retention_days", "must be at most 36500"));
        }
        if let Err(crate::sealing::KeyringError::Invalid { setting, reason }) =
            crate::sealing::Keyring::from_settings(self)
        {
            return Err(ConfigError::Invalid { setting, reason });
        }
        for (setting, cron) in [
            ("scheduler.reconnect_cron", &self.scheduler.reconnect_cron),
            ("scheduler.retention_cron", &self.scheduler.retention_cron),
            (
                "scheduler.webhook_sweep_cron",
                &self.scheduler.webhook_sweep_cron,
            ),
        ] {
            if cron.split_whitespace().count() != 6 {
                return Err(invalid(
                    setting,
                    "must be a cron expression with six fields (seconds first)",
                ));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(ConfigError::Invalid {
                setting: "log",
                reason: e.to_string(),
            });
        }
        Ok(())
    }

    /// The SQLite file the database URL names, if it names one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        let rest = self.database.url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_defaults_are_valid() {
        let settings = Settings::from_figment(Figment::from(Toml::string(DEFAULTS)))
            .expect("defaults validate");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.sqlite_path(), Some(Path::new("data/wagate.db")));
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let figment =
            Figment::from(Toml::string(DEFAULTS)).merge(("database.max_connections", "many"));
        let err = Settings::from_figment(figment).expect_err("rejected");
        assert!(
            err.to_string().contains("database.max_connections"),
            "{err}"
        );

        let figment = Figment::from(Toml::string(DEFAULTS)).merge(("database.url", "mysql://x"));
        let err = Settings::from_figment(figment).expect_err("rejected");
        assert!(err.to_string().contains("database.url"), "{err}");
    }

    #[test]
    fn sqlite_paths() {
        let mut s = Settings::default();
        s.database.url = "sqlite:///tmp/a.db?mode=rwc".into();
        assert_eq!(s.sqlite_path(), Some(Path::new("/tmp/a.db")));
        s.database.url = "sqlite::memory:".into();
        assert_eq!(s.sqlite_path(), None);
        s.database.url = "postgres://localhost/x".into();
        assert_eq!(s.sqlite_path(), None);
    }
}
