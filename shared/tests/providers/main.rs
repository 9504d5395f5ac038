//! The provider clients against local stand-ins: wiremock as Twilio and SendGrid, raw TCP
//! servers where a test needs a connection to misbehave (a reset after the request, an SMTP
//! server that stalls or hangs up at a chosen step), and Prism on SendGrid's published API
//! description for its contract test.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod sendgrid;
mod sendgrid_contract;
mod smtp;
mod twilio_lookup;
mod twilio_send;

use herald_shared::config::{SendgridConfig, TwilioConfig};
use herald_shared::providers::outreach::OutreachEmail;
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

/// SendGrid settings pointing at `base_url`, waiting `timeout_secs` for an answer.
fn sendgrid_config(base_url: &str, timeout_secs: u64) -> SendgridConfig {
    SendgridConfig {
        base_url: base_url.parse().unwrap(),
        timeout_secs,
        event_webhook_public_key: String::new(),
    }
}

/// A follow-up (step 3) with a reply-to address: every optional header is set.
fn outreach_email() -> OutreachEmail {
    let effect_id = uuid::Uuid::now_v7();
    OutreachEmail {
        from_name: "Sam Seller".to_owned(),
        from_email: "sam@seller.example".to_owned(),
        reply_to: Some("replies@seller.example".to_owned()),
        to: "ada@prospect.example".to_owned(),
        subject: "Re: “Q1” plans — quick question".to_owned(),
        body: "Hello Ada,\n\nFollowing up on my last note: ¿any thoughts?\n\nSam".to_owned(),
        message_id: OutreachEmail::message_id_for(effect_id, "sam@seller.example"),
        thread: vec![
            "<0190c3a8-0000-7000-8000-000000000001@seller.example>".to_owned(),
            "<0190c3a8-0000-7000-8000-000000000002@seller.example>".to_owned(),
        ],
        unsubscribe_url: "https://herald.example/u/tok_abc".to_owned(),
        effect_id,
    }
}
