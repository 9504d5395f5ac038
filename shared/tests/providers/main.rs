//! The provider clients against local stand-ins: wiremock as Twilio, and raw TCP servers
//! where a test needs a connection to misbehave (a reset after the request, an SMTP server
//! that stalls or hangs up at a chosen step).

#![expect(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod smtp;
mod twilio_lookup;
mod twilio_send;

use herald_shared::config::TwilioConfig;
use secrecy::SecretString;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "test-auth-token";
const SMS_FROM: &str = "+15005550006";
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

/// Twilio settings pointing at `base_url`, waiting `timeout_secs` for an answer.
fn twilio_config(base_url: &str, timeout_secs: u64) -> TwilioConfig {
    TwilioConfig {
        base_url: base_url.parse().unwrap(),
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: SecretString::from(AUTH_TOKEN),
        sms_from: SMS_FROM.to_owned(),
        whatsapp_from: "+14155238886".to_owned(),
        messaging_service_sid: String::new(),
        public_base_url: "https://herald.example.com".to_owned(),
        timeout_secs,
        auth_failure_retry_secs: 60,
        sms_per_second: 1,
        whatsapp_per_second: 10,
        reply_window_secs: 604_800,
    }
}
