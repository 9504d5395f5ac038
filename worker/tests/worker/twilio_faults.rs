//! The send path against Twilio faults (the stand-in in `herald_testing::twilio_standin`): a message Twilio
//! created but whose answer was lost — a stall past the client's timeout, a reset connection,
//! a 500 — is found by the look-up on the next attempt and recorded sent with Twilio's SID,
//! never sent twice; one Twilio never received is sent again, once.

use std::time::Duration;

use chrono::Utc;
use herald_shared::effects::EffectKind;
use serde_json::Value;

use crate::helpers::TestWorker;
use herald_testing::twilio_standin::{Fault, TwilioStandin};

/// Settings pointing Twilio at the stand-in, giving up on an answer after 1 s.
fn twilio(standin: &TwilioStandin) -> Vec<(&'static str, Value)> {
    vec![
        ("twilio.base_url", Value::from(standin.base_url.as_str())),
        (
            "twilio.account_sid",
            Value::from("AC0123456789abcdef0123456789abcdef"),
        ),
        ("twilio.auth_token", Value::from("test-auth-token")),
        ("twilio.sms_from", Value::from("+15005550006")),
        ("twilio.whatsapp_from", Value::from("+14155238886")),
        (
            "twilio.public_base_url",
            Value::from("https://herald.example.com"),
        ),
        ("twilio.timeout_secs", Value::from(1)),
        ("twilio.sms_per_second", Value::from(100)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_whose_answer_was_lost_is_delivered_exactly_once_whatever_the_fault() {
    let standin = TwilioStandin::start().await.unwrap();
    let cases = [
        ("+14155550201", Some(Fault::Stall)),
        ("+14155550202", Some(Fault::Reset)),
        ("+14155550203", Some(Fault::ServerError)),
        ("+14155550204", Some(Fault::ResetBeforeCreating)),
        ("+14155550205", None),
    ];
    for (to, fault) in cases {
        if let Some(fault) = fault {
            standin.fail_next(to, fault);
        }
    }
    let test = TestWorker::spawn(&twilio(&standin), |jobs| {
        jobs.with(EffectKind::Message, |settings| {
            settings.retry_schedule = vec![Duration::from_millis(100)];
        })
    })
    .await;
    let delivery = test.create_delivery().await;
    let mut planned = Vec::new();
    for (to, fault) in cases {
        let student = test.add_student(delivery, to, "sms").await;
        let body = format!("Day 1 for {to}");
        let message = test
            .plan_message(delivery, student, 0, &body, Utc::now())
            .await;
        planned.push((to, fault, message.effect_id));
    }

    for (to, fault, effect_id) in planned {
        let row = test.wait_for_state(effect_id, "sent").await;
        let created = standin.created_for(to);
        assert_eq!(created.len(), 1, "{to} ({fault:?}): {created:?}");
        assert_eq!(
            row.provider_id.as_deref(),
            Some(created[0].sid.as_str()),
            "{to} ({fault:?})"
        );
        // found by the look-up: one create request; never received: sent again, once
        let (attempts, creates) = match fault {
            None => (1, 1),
            Some(Fault::ResetBeforeCreating) => (2, 2),
            Some(_) => (2, 1),
        };
        assert_eq!(row.attempts, attempts, "{to} ({fault:?})");
        assert_eq!(standin.creates_for(to), creates, "{to} ({fault:?})");
    }
    test.finish().await;
}
