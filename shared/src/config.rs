//! Typed, layered configuration shared by both binaries.
//!
//! Layers, later wins: the commented defaults in `config/default.toml` (embedded at build
//! time) → an optional TOML file named by `HERALD_CONFIG` → `HERALD_<SECTION>__<KEY>`
//! environment variables (`DATABASE_URL` and `REDIS_URL` are accepted as aliases). The result
//! is validated once at start; an error names the setting it is about.

use std::net::SocketAddr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The committed defaults file, embedded so a binary runs with no file beside it.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

/// A configuration problem, phrased for the operator reading one log line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {reason}")]
pub struct ConfigError {
    /// The setting at fault, as `section.key`.
    pub setting: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &str, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Every setting of Herald; see `config/default.toml` for the meaning of each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub auth: AuthConfig,
    pub email: EmailConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL; may carry a password, so it is never logged.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: SecretString,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub listen: SocketAddr,
    pub poll_interval_ms: u64,
    pub dispatch_batch: u32,
    pub requeue_after_secs: u64,
    pub stuck_sending_grace_secs: u64,
    pub sweep_interval_secs: u64,
    pub redis_task_retention_secs: u64,
    pub shutdown_timeout_secs: u64,
    pub replica_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub jwt_secret: SecretString,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub reset_token_ttl_secs: u64,
    pub verify_token_ttl_secs: u64,
    pub max_failed_logins_per_account: u32,
    pub max_failed_logins_per_ip: u32,
    pub login_window_secs: u64,
    pub max_reset_emails_per_hour: u32,
    pub frontend_url: url::Url,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    pub smtp_username: String,
    pub smtp_password: SecretString,
    pub smtp_timeout_secs: u64,
}

impl EmailConfig {
    /// Sandbox mode: no SMTP host, so e-mails are recorded and logged, never sent.
    pub fn is_sandbox(&self) -> bool {
        self.smtp_host.trim().is_empty()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

impl Config {
    /// Loads the layers from the process environment and validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_figment(&Self::figment())
    }

    /// The layered sources, before extraction; tests add their own layer on top.
    pub fn figment() -> Figment {
        let mut figment = Self::figment_defaults();
        if let Ok(path) = std::env::var("HERALD_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(
                Env::prefixed("HERALD_")
                    .split("__")
                    .ignore(&["config", "jobs"]),
            )
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::raw().only(&["REDIS_URL"]).map(|_| "redis.url".into()))
    }

    /// The embedded defaults alone, without the file and environment layers.
    pub fn figment_defaults() -> Figment {
        Figment::from(Toml::string(DEFAULT_CONFIG))
    }

    /// Extracts and validates a configuration from any figment.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let config: Self = figment.extract().map_err(|err| {
            let setting = err.path.join(".");
            let setting = if setting.is_empty() {
                "config".to_owned()
            } else {
                setting
            };
            ConfigError::new(&setting, err.kind.to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let db = self.database.url.expose_secret();
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "database.url",
                "must start with postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::new(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        let redis = self.redis.url.expose_secret();
        if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError::new("redis.url", "must start with redis://"));
        }
        if self.auth.jwt_secret.expose_secret().len() < 32 {
            return Err(ConfigError::new(
                "auth.jwt_secret",
                "must be set to at least 32 characters (HERALD_AUTH__JWT_SECRET)",
            ));
        }
        for (setting, value) in [
            (
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs,
            ),
            (
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs,
            ),
            ("auth.reset_token_ttl_secs", self.auth.reset_token_ttl_secs),
            (
                "auth.verify_token_ttl_secs",
                self.auth.verify_token_ttl_secs,
            ),
            ("auth.login_window_secs", self.auth.login_window_secs),
            ("worker.poll_interval_ms", self.worker.poll_interval_ms),
            ("worker.requeue_after_secs", self.worker.requeue_after_secs),
            (
                "worker.sweep_interval_secs",
                self.worker.sweep_interval_secs,
            ),
            ("email.smtp_timeout_secs", self.email.smtp_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::new(setting, "must be greater than 0"));
            }
        }
        if self.worker.dispatch_batch == 0 {
            return Err(ConfigError::new(
                "worker.dispatch_batch",
                "must be at least 1",
            ));
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::new(
                "email.from",
                "must be an address like `Name <a@b.c>`",
            ));
        }
        if self.email.smtp_username.is_empty()
            != self.email.smtp_password.expose_secret().is_empty()
        {
            return Err(ConfigError::new(
                "email.smtp_username",
                "username and password must be set together",
            ));
        }
        Ok(())
    }

    /// Access-token lifetime.
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth.access_token_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;

    use super::*;

    fn with(key: &str, value: &str) -> Figment {
        Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Serialized::default("auth.jwt_secret", "x".repeat(32)))
            .merge(Serialized::default(key, value))
    }

    #[test]
    fn committed_defaults_load_once_a_secret_is_given() {
        let config = Config::from_figment(&with("log.format", "json")).unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(config.email.is_sandbox());
    }

    #[test]
    fn a_missing_jwt_secret_names_the_setting() {
        let err = Config::from_figment(&Figment::from(Toml::string(DEFAULT_CONFIG))).unwrap_err();
        assert_eq!(err.setting, "auth.jwt_secret");
    }

    #[test]
    fn a_bad_value_names_the_setting() {
        let err = Config::from_figment(&with("email.smtp_tls", "sometimes")).unwrap_err();
        assert_eq!(err.setting, "email.smtp_tls");
        let err = Config::from_figment(&with("database.url", "mysql://x")).unwrap_err();
        assert_eq!(err.setting, "database.url");
    }

    #[test]
    fn an_unknown_setting_is_refused() {
        let err = Config::from_figment(&with("api.lisen", "x")).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = Config::from_figment(
            &with("email.smtp_password", "hunter2-secret")
                .merge(Serialized::default("email.smtp_username", "u")),
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-secret"));
        assert!(!shown.contains(&"x".repeat(32)));
    }
}
