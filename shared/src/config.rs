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

/// Settings whose value is text even when it looks like a number (phone numbers, secrets).
const TEXT_SETTINGS: [&str; 16] = [
    "redis.key_prefix",
    "secrets.encryption_key",
    "worker.replica_name",
    "auth.jwt_secret",
    "email.from",
    "email.smtp_host",
    "email.smtp_username",
    "email.smtp_password",
    "email.inbound_secret",
    "llm.default_provider.api_key",
    "sendgrid.event_webhook_public_key",
    "twilio.account_sid",
    "twilio.auth_token",
    "twilio.sms_from",
    "twilio.whatsapp_from",
    "twilio.messaging_service_sid",
];

/// Every setting of Herald; see `config/default.toml` for the meaning of each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub auth: AuthConfig,
    pub secrets: SecretsConfig,
    pub email: EmailConfig,
    pub twilio: TwilioConfig,
    pub schedules: SchedulesConfig,
    pub limits: LimitsConfig,
    pub llm: LlmConfig,
    pub sendgrid: SendgridConfig,
    pub campaigns: CampaignsConfig,
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
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` is believed; empty: none, the TCP peer
    /// is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A separate listener for `/metrics` alone; empty: `/metrics` is on `listen`.
    pub metrics_listen: String,
    /// Public URL of herald-api as recipients reach it: links in e-mails (one-click
    /// unsubscribe, `{public_url}/u/{token}`) start with it.
    pub public_url: url::Url,
}

impl ApiConfig {
    /// The separate `/metrics` listener, if one is configured (validated at load).
    pub fn metrics_listen(&self) -> Option<SocketAddr> {
        self.metrics_listen.trim().parse().ok()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub listen: SocketAddr,
    pub poll_interval_ms: u64,
    pub dispatch_batch: u32,
    /// How long before rows fall due the dispatcher pushes them; the worker starts each at
    /// its instant.
    pub dispatch_lead_ms: u64,
    /// How far ahead the dispatcher reserves rate-limit slots for the rows it pushes.
    pub rate_horizon_ms: u64,
    pub requeue_after_secs: u64,
    /// How often the dispatcher checks that Redis still holds its data (the epoch key).
    pub redis_epoch_check_ms: u64,
    pub stuck_sending_grace_secs: u64,
    pub sweep_interval_secs: u64,
    pub redis_task_retention_secs: u64,
    pub retention_days: u32,
    /// Most rows one housekeeping delete statement removes.
    pub housekeeping_batch: u32,
    /// Seconds beyond 3 intervals without a pass after which a worker loop is stale.
    pub loop_grace_secs: u64,
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
    /// Argon2 computations running at once; 0 (or absent) means one per CPU.
    #[serde(default)]
    pub max_concurrent_hashes: u32,
    /// How long a request waits for a free hashing slot before answering 503, in ms.
    pub hash_wait_ms: u64,
    /// Sign-ups allowed per client IP (IPv6: per /64) per hour.
    pub max_signups_per_ip_per_hour: u32,
    /// Forgot-password requests being worked on at once (each answers before its work).
    pub max_pending_reset_requests: u32,
    /// A session older than this cannot be refreshed any more, in seconds.
    pub session_max_age_secs: u64,
}

impl AuthConfig {
    /// `max_concurrent_hashes` with 0 resolved to the number of CPUs.
    pub fn concurrent_hashes(&self) -> usize {
        match self.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }
}

/// Keys for secrets kept at rest (reset and verification links in e-mails waiting to be sent;
/// later provider credentials).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// AES-256-GCM key: 32 bytes, base64. Required once e-mails leave the machine (SMTP
    /// configured); empty in e-mail sandbox mode means a key derived from `auth.jwt_secret`.
    pub encryption_key: SecretString,
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
    /// Whether a campaign sender's SMTP host may be (or resolve to) a loopback, private or
    /// link-local address; off by default (see `net`). On for a mail relay on a private
    /// network, and in tests.
    pub allow_private_smtp_hosts: bool,
    /// The secret path segment of the inbound-parse webhook
    /// (`/webhooks/email/inbound/{secret}`); empty: the webhook answers 404 to everything.
    pub inbound_secret: SecretString,
}

impl EmailConfig {
    /// Sandbox mode: no SMTP host, so e-mails are recorded and logged, never sent.
    pub fn is_sandbox(&self) -> bool {
        self.smtp_host.trim().is_empty()
    }
}

/// Twilio, for course messages over SMS and WhatsApp. With no account SID and auth token the
/// worker is in sandbox mode: messages are recorded as `sandboxed` and logged, not sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Root of Twilio's REST API; tests point it at wiremock or Prism.
    pub base_url: url::Url,
    /// Account SID (`AC` + 32 hex digits); empty, with `auth_token`, means sandbox mode.
    pub account_sid: String,
    /// Auth token: the HTTP Basic password, and the key of webhook signatures.
    pub auth_token: SecretString,
    /// Sender of SMS: an E.164 number, short code or alphanumeric sender ID.
    pub sms_from: String,
    /// Sender of WhatsApp messages: an E.164 number (sent as `whatsapp:<number>`).
    pub whatsapp_from: String,
    /// A Messaging Service (`MG` + 32 hex digits); when set it is the sender of both
    /// channels and the `*_from` numbers are not used.
    pub messaging_service_sid: String,
    /// Public URL of herald-api; when set, Twilio reports message status to
    /// `{public_base_url}/webhooks/twilio/status`.
    pub public_base_url: String,
    /// Seconds to wait for Twilio before an attempt counts as failed (retried).
    pub timeout_secs: u64,
    /// Seconds before messages refused for Herald's credentials (401/403) are tried again.
    pub auth_failure_retry_secs: u64,
    /// SMS sent per second per sender, across every worker replica.
    pub sms_per_second: u32,
    /// WhatsApp messages sent per second per sender, across every worker replica.
    pub whatsapp_per_second: u32,
    /// On the shared default sender, how long after a question a reply can still be
    /// attributed to the one account that asked, in seconds.
    pub reply_window_secs: u64,
}

impl TwilioConfig {
    /// Sandbox mode: no credentials, so messages are recorded and logged, never sent.
    pub fn is_sandbox(&self) -> bool {
        self.account_sid.trim().is_empty() && self.auth_token.expose_secret().is_empty()
    }

    /// Whether `number` is the platform's shared default sender number on `whatsapp` (else
    /// SMS): the sender of every account without its own.
    pub fn is_shared_number(&self, whatsapp: bool, number: &str) -> bool {
        let default = if whatsapp {
            self.whatsapp_from.trim()
        } else {
            self.sms_from.trim()
        };
        !default.is_empty() && default == number
    }

    /// Whether `sid` is the platform's shared default Messaging Service.
    pub fn is_shared_service(&self, sid: &str) -> bool {
        let default = self.messaging_service_sid.trim();
        !default.is_empty() && default == sid
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                "twilio.base_url",
                "must be an http(s) URL",
            ));
        }
        if !self.public_base_url.is_empty() {
            let valid = url::Url::parse(&self.public_base_url)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
            if !valid {
                return Err(ConfigError::new(
                    "twilio.public_base_url",
                    "must be empty or an http(s) URL like https://herald.example.com",
                ));
            }
        }
        if self.timeout_secs == 0 {
            return Err(ConfigError::new(
                "twilio.timeout_secs",
                "must be greater than 0",
            ));
        }
        if self.sms_per_second == 0 {
            return Err(ConfigError::new(
                "twilio.sms_per_second",
                "must be at least 1",
            ));
        }
        if self.whatsapp_per_second == 0 {
            return Err(ConfigError::new(
                "twilio.whatsapp_per_second",
                "must be at least 1",
            ));
        }
        if self.reply_window_secs == 0 {
            return Err(ConfigError::new(
                "twilio.reply_window_secs",
                "must be greater than 0",
            ));
        }
        if !self.messaging_service_sid.is_empty() && !is_sid(&self.messaging_service_sid, "MG") {
            return Err(ConfigError::new(
                "twilio.messaging_service_sid",
                "must be empty or MG followed by 32 hex digits",
            ));
        }
        if self.is_sandbox() {
            return Ok(());
        }
        if self.account_sid.is_empty() || self.auth_token.expose_secret().is_empty() {
            return Err(ConfigError::new(
                "twilio.account_sid",
                "account_sid and auth_token must be set together (both empty: sandbox mode)",
            ));
        }
        if !is_sid(&self.account_sid, "AC") {
            return Err(ConfigError::new(
                "twilio.account_sid",
                "must be AC followed by 32 hex digits",
            ));
        }
        if self.messaging_service_sid.is_empty()
            && self.sms_from.trim().is_empty()
            && self.whatsapp_from.trim().is_empty()
        {
            return Err(ConfigError::new(
                "twilio.sms_from",
                "credentials are set but no sender is: set sms_from, whatsapp_from or \
                 messaging_service_sid",
            ));
        }
        // Without it every Twilio webhook fails its signature check (403), so replies and
        // STOP keywords would be dropped silently while messages still go out.
        if self.public_base_url.trim().is_empty() {
            return Err(ConfigError::new(
                "twilio.public_base_url",
                "credentials are set but public_base_url is not: set it to herald-api's \
                 public URL, or Twilio's webhooks (replies, STOP) are all refused",
            ));
        }
        Ok(())
    }
}

/// Whether `sid` is `prefix` followed by 32 hex digits, the shape of every Twilio SID.
pub fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Planning of API schedules (recurring group messages).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulesConfig {
    /// Fires up to this many seconds ahead are planned as effect rows.
    pub horizon_secs: u64,
    /// A fire planned this many seconds late still sends; older ones are `missed`.
    pub catch_up_secs: u64,
    /// Most fires still to send per zone one planning pass writes.
    pub max_fires_per_zone: usize,
    /// Most messages one planning pass writes for one schedule (whole fires; the first
    /// instant is always planned whole; a fire without messages counts as one).
    pub max_messages_per_pass: usize,
    /// How often each worker replica's planner looks for schedules to extend, in ms.
    pub plan_interval_ms: u64,
    /// Most schedules one planning transaction takes.
    pub plan_batch: u32,
}

/// Bounds on what one request may ask of the system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most messages one course delivery may plan (subscribed students × the course's
    /// messages per student); beyond it, creating or previewing the delivery answers 422.
    pub max_messages_per_delivery: u64,
}

/// LLM providers accounts add (`/api/v1/llm/providers`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Whether a provider's `base_url` may name a loopback, private, link-local or otherwise
    /// internal address. Off by default: Herald calls a provider's URL from inside the
    /// deployment with the account's key, so such a URL would let an account reach services
    /// that are not meant to be reachable from outside (a cloud metadata endpoint, Redis). On
    /// for a deployment that runs its own model server on a private network, and in tests.
    pub allow_private_base_urls: bool,
    /// Most generation jobs of one account running at once, across every replica, so one
    /// account's 50,000 prospects cannot hold every provider slot while another's 50 wait.
    pub max_concurrent_per_account: u32,
    /// `max_completion_tokens` of each generation call: the longest answer paid for. It also
    /// counts, with the prompt, against the provider's tokens per minute, as OpenAI's own
    /// limiter counts a request when it arrives.
    pub max_output_tokens: u32,
    /// The deployment's own provider, which every account may put models on.
    pub default_provider: DefaultProviderConfig,
}

/// The deployment's own LLM provider (`[llm.default_provider]`); none with `base_url` empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultProviderConfig {
    /// How accounts see it in `/api/v1/llm/providers`.
    pub name: String,
    /// The API root (`/chat/completions` is appended); the operator's, so internal addresses
    /// are allowed. Empty: no deployment provider.
    pub base_url: String,
    pub api_key: SecretString,
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
}

impl DefaultProviderConfig {
    /// Whether one is configured.
    pub fn is_set(&self) -> bool {
        !self.base_url.trim().is_empty()
    }
}

/// SendGrid, for senders whose transport is `sendgrid`, and its signed Event Webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridConfig {
    /// Root of SendGrid's v3 API; tests point it at wiremock or Prism.
    pub base_url: url::Url,
    /// Seconds to wait for SendGrid's answer to one Mail Send call.
    pub timeout_secs: u64,
    /// The Event Webhook's verification key as SendGrid shows it (base64 DER of a P-256
    /// public key). Empty: every event post is refused (403).
    pub event_webhook_public_key: String,
}

/// Running outreach campaigns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignsConfig {
    /// How often the worker plans follow-ups of e-mails just sent and ends finished
    /// sequences, in seconds.
    pub follow_up_interval_secs: u64,
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
        figment = figment
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
            .merge(Env::raw().only(&["REDIS_URL"]).map(|_| "redis.url".into()));
        // figment reads `+15005550006` or `12345` from the environment as a number; text
        // settings take the variable exactly as written instead.
        for setting in TEXT_SETTINGS {
            let variable = format!("HERALD_{}", setting.replace('.', "__").to_uppercase());
            if let Ok(raw) = std::env::var(&variable) {
                figment = figment.merge(figment::providers::Serialized::default(setting, raw));
            }
        }
        figment
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
        let provider = &self.llm.default_provider;
        if provider.is_set() {
            let url = url::Url::parse(provider.base_url.trim());
            if !url.is_ok_and(|url| matches!(url.scheme(), "http" | "https")) {
                return Err(ConfigError::new(
                    "llm.default_provider.base_url",
                    "must be an http or https URL like https://api.openai.com/v1",
                ));
            }
            if provider.api_key.expose_secret().is_empty() {
                return Err(ConfigError::new(
                    "llm.default_provider.api_key",
                    "must be set with base_url (HERALD_LLM__DEFAULT_PROVIDER__API_KEY)",
                ));
            }
            if provider.name.trim().is_empty() || provider.name.chars().count() > 100 {
                return Err(ConfigError::new(
                    "llm.default_provider.name",
                    "must be 1–100 characters",
                ));
            }
            for (setting, value) in [
                (
                    "llm.default_provider.requests_per_minute",
                    provider.requests_per_minute,
                ),
                (
                    "llm.default_provider.tokens_per_minute",
                    provider.tokens_per_minute,
                ),
            ] {
                if value == 0 || i32::try_from(value).is_err() {
                    return Err(ConfigError::new(setting, "must be 1–2,147,483,647"));
                }
            }
        }
        let event_key = self.sendgrid.event_webhook_public_key.trim();
        if !event_key.is_empty()
            && let Err(err) = crate::email_events::EventWebhookKey::parse(event_key)
        {
            return Err(ConfigError::new(
                "sendgrid.event_webhook_public_key",
                err.to_string(),
            ));
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
            ("auth.hash_wait_ms", self.auth.hash_wait_ms),
            (
                "auth.max_signups_per_ip_per_hour",
                u64::from(self.auth.max_signups_per_ip_per_hour),
            ),
            (
                "auth.max_pending_reset_requests",
                u64::from(self.auth.max_pending_reset_requests),
            ),
            ("auth.session_max_age_secs", self.auth.session_max_age_secs),
            (
                "llm.max_concurrent_per_account",
                u64::from(self.llm.max_concurrent_per_account),
            ),
            (
                "llm.max_output_tokens",
                u64::from(self.llm.max_output_tokens),
            ),
            ("sendgrid.timeout_secs", self.sendgrid.timeout_secs),
            (
                "campaigns.follow_up_interval_secs",
                self.campaigns.follow_up_interval_secs,
            ),
            ("worker.poll_interval_ms", self.worker.poll_interval_ms),
            ("worker.rate_horizon_ms", self.worker.rate_horizon_ms),
            ("worker.requeue_after_secs", self.worker.requeue_after_secs),
            (
                "worker.redis_epoch_check_ms",
                self.worker.redis_epoch_check_ms,
            ),
            (
                "worker.sweep_interval_secs",
                self.worker.sweep_interval_secs,
            ),
            (
                "worker.redis_task_retention_secs",
                self.worker.redis_task_retention_secs,
            ),
            ("email.smtp_timeout_secs", self.email.smtp_timeout_secs),
            (
                "worker.housekeeping_batch",
                u64::from(self.worker.housekeeping_batch),
            ),
            (
                "twilio.auth_failure_retry_secs",
                self.twilio.auth_failure_retry_secs,
            ),
            ("schedules.horizon_secs", self.schedules.horizon_secs),
            (
                "schedules.plan_interval_ms",
                self.schedules.plan_interval_ms,
            ),
            ("schedules.plan_batch", u64::from(self.schedules.plan_batch)),
            ("schedules.catch_up_secs", self.schedules.catch_up_secs),
            (
                "schedules.max_fires_per_zone",
                self.schedules.max_fires_per_zone as u64,
            ),
            (
                "schedules.max_messages_per_pass",
                self.schedules.max_messages_per_pass as u64,
            ),
            (
                "limits.max_messages_per_delivery",
                self.limits.max_messages_per_delivery,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(setting, "must be greater than 0"));
            }
        }
        // planners extend a plan once it ends within half the horizon: they must look at
        // least twice in that half, or fires are planned after they are due
        if self.schedules.horizon_secs.saturating_mul(1000) < 4 * self.schedules.plan_interval_ms {
            return Err(ConfigError::new(
                "schedules.horizon_secs",
                "must be at least 4 × schedules.plan_interval_ms",
            ));
        }
        let metrics_listen = self.api.metrics_listen.trim();
        if !metrics_listen.is_empty() && metrics_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::new(
                "api.metrics_listen",
                "must be empty or an address like 127.0.0.1:9091",
            ));
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
        if self.schedules.max_fires_per_zone == 0 {
            return Err(ConfigError::new(
                "schedules.max_fires_per_zone",
                "must be at least 1",
            ));
        }
        self.twilio.validate()?;
        self.validate_secrets()?;
        Ok(())
    }

    fn validate_secrets(&self) -> Result<(), ConfigError> {
        let key = self.secrets.encryption_key.expose_secret();
        if key.is_empty() {
            if !self.email.is_sandbox() {
                return Err(ConfigError::new(
                    "secrets.encryption_key",
                    "must be set when e-mails are sent (email.smtp_host): 32 random bytes in \
                     base64, e.g. `openssl rand -base64 32`",
                ));
            }
            return Ok(());
        }
        if crate::secrets::decode_key(key).is_none() {
            return Err(ConfigError::new(
                "secrets.encryption_key",
                "must be 32 bytes in base64, e.g. `openssl rand -base64 32`",
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
    fn an_event_webhook_key_that_is_not_a_p256_key_is_refused_at_start() {
        let err = Config::from_figment(&with("sendgrid.event_webhook_public_key", "bm90IGEga2V5"))
            .unwrap_err();
        assert_eq!(err.setting, "sendgrid.event_webhook_public_key");
        let (key, _) = crate::email_events::testing::key_pair();
        assert!(Config::from_figment(&with("sendgrid.event_webhook_public_key", &key)).is_ok());
    }

    #[test]
    fn committed_defaults_load_once_a_secret_is_given() {
        let config = Config::from_figment(&with("log.format", "json")).unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(config.email.is_sandbox());
        assert_eq!(config.limits.max_messages_per_delivery, 1_000_000);
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
    fn a_zero_period_or_retention_is_refused() {
        for key in [
            "worker.sweep_interval_secs",
            "worker.redis_task_retention_secs",
            "limits.max_messages_per_delivery",
            "worker.housekeeping_batch",
            "twilio.auth_failure_retry_secs",
        ] {
            let figment = with("log.format", "json").merge(Serialized::default(key, 0));
            let err = Config::from_figment(&figment).unwrap_err();
            assert_eq!(err.setting, key);
        }
    }

    #[test]
    fn a_horizon_the_planners_cannot_keep_up_with_is_refused() {
        let figment = with("log.format", "json")
            .merge(Serialized::default("schedules.horizon_secs", 3))
            .merge(Serialized::default("schedules.plan_interval_ms", 1000));
        let err = Config::from_figment(&figment).unwrap_err();
        assert_eq!(err.setting, "schedules.horizon_secs");
        let figment = figment.merge(Serialized::default("schedules.horizon_secs", 4));
        Config::from_figment(&figment).unwrap();
    }

    #[test]
    fn metrics_listen_is_empty_or_an_address() {
        let config = Config::from_figment(&with("log.format", "json")).unwrap();
        assert_eq!(config.api.metrics_listen(), None);
        let config = Config::from_figment(&with("api.metrics_listen", "127.0.0.1:9091")).unwrap();
        assert_eq!(
            config.api.metrics_listen(),
            Some("127.0.0.1:9091".parse().unwrap())
        );
        let err = Config::from_figment(&with("api.metrics_listen", "9091")).unwrap_err();
        assert_eq!(err.setting, "api.metrics_listen");
    }

    #[test]
    fn an_unknown_setting_is_refused() {
        let err = Config::from_figment(&with("api.lisen", "x")).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn the_secrets_key_is_required_once_smtp_is_set_and_must_be_32_bytes() {
        let smtp = with("email.smtp_host", "smtp.example.com");
        let err = Config::from_figment(&smtp).unwrap_err();
        assert_eq!(err.setting, "secrets.encryption_key");
        let key = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE=";
        Config::from_figment(&smtp.merge(Serialized::default("secrets.encryption_key", key)))
            .unwrap();
        let err = Config::from_figment(&with("secrets.encryption_key", "c2hvcnQ=")).unwrap_err();
        assert_eq!(err.setting, "secrets.encryption_key");
        // sandbox mode: empty is allowed
        Config::from_figment(&with("log.format", "text")).unwrap();
    }

    #[test]
    fn auth_hardening_settings_are_validated() {
        for key in [
            "auth.hash_wait_ms",
            "auth.max_signups_per_ip_per_hour",
            "auth.max_pending_reset_requests",
            "auth.session_max_age_secs",
        ] {
            let figment = with("log.format", "json").merge(Serialized::default(key, 0));
            assert_eq!(Config::from_figment(&figment).unwrap_err().setting, key);
        }
        let err = Config::from_figment(
            &with("log.format", "json")
                .merge(Serialized::default("api.trusted_proxies", ["10.0.0.0/33"])),
        )
        .unwrap_err();
        assert!(err.setting.starts_with("api.trusted_proxies"), "{err}");
        let config = Config::from_figment(&with("log.format", "json").merge(Serialized::default(
            "api.trusted_proxies",
            ["10.0.0.0/8", "::1/128"],
        )))
        .unwrap();
        assert_eq!(config.api.trusted_proxies.len(), 2);
        assert!(config.auth.concurrent_hashes() >= 1);
    }

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn twilio_defaults_to_sandbox_mode() {
        let config = Config::from_figment(&with("log.format", "text")).unwrap();
        assert!(config.twilio.is_sandbox());
    }

    #[test]
    fn twilio_credentials_without_a_sender_are_refused() {
        let figment = with("twilio.account_sid", SID)
            .merge(Serialized::default("twilio.auth_token", "token"))
            .merge(Serialized::default(
                "twilio.public_base_url",
                "https://herald.example.com",
            ));
        let err = Config::from_figment(&figment).unwrap_err();
        assert_eq!(err.setting, "twilio.sms_from");
        let config = Config::from_figment(
            &figment.merge(Serialized::default("twilio.sms_from", "+15005550006")),
        )
        .unwrap();
        assert!(!config.twilio.is_sandbox());
    }

    #[test]
    fn twilio_credentials_without_a_public_base_url_are_refused() {
        let figment = with("twilio.account_sid", SID)
            .merge(Serialized::default("twilio.auth_token", "token"))
            .merge(Serialized::default("twilio.sms_from", "+15005550006"));
        let err = Config::from_figment(&figment).unwrap_err();
        assert_eq!(err.setting, "twilio.public_base_url");
        let blank = figment
            .clone()
            .merge(Serialized::default("twilio.public_base_url", "  "));
        assert_eq!(
            Config::from_figment(&blank).unwrap_err().setting,
            "twilio.public_base_url"
        );
        let config = Config::from_figment(&figment.merge(Serialized::default(
            "twilio.public_base_url",
            "https://herald.example.com",
        )))
        .unwrap();
        assert!(!config.twilio.is_sandbox());
    }

    #[test]
    fn half_of_the_twilio_credentials_is_refused() {
        let err = Config::from_figment(&with("twilio.account_sid", SID)).unwrap_err();
        assert_eq!(err.setting, "twilio.account_sid");
        let err = Config::from_figment(&with("twilio.auth_token", "token")).unwrap_err();
        assert_eq!(err.setting, "twilio.account_sid");
    }

    #[test]
    fn malformed_twilio_settings_name_the_setting() {
        let figment = with("twilio.account_sid", "AC123")
            .merge(Serialized::default("twilio.auth_token", "token"))
            .merge(Serialized::default("twilio.sms_from", "+15005550006"));
        assert_eq!(
            Config::from_figment(&figment).unwrap_err().setting,
            "twilio.account_sid"
        );
        for (key, value) in [
            ("twilio.messaging_service_sid", "MG1"),
            ("twilio.public_base_url", "herald.example.com"),
            ("twilio.base_url", "ftp://api.twilio.com"),
        ] {
            let err = Config::from_figment(&with(key, value)).unwrap_err();
            assert_eq!(err.setting, key, "{value}");
        }
        let err = Config::from_figment(
            &with("log.format", "text").merge(Serialized::default("twilio.sms_per_second", 0)),
        )
        .unwrap_err();
        assert_eq!(err.setting, "twilio.sms_per_second");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = Config::from_figment(
            &with("email.smtp_password", "hunter2-secret")
                .merge(Serialized::default("email.smtp_username", "u"))
                .merge(Serialized::default("twilio.account_sid", SID))
                .merge(Serialized::default(
                    "twilio.auth_token",
                    "twilio-token-secret",
                ))
                .merge(Serialized::default("twilio.sms_from", "+15005550006"))
                .merge(Serialized::default(
                    "twilio.public_base_url",
                    "https://herald.example.com",
                )),
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-secret"));
        assert!(!shown.contains("twilio-token-secret"));
        assert!(!shown.contains(&"x".repeat(32)));
    }
}
