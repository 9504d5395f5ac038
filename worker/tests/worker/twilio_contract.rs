//! Contract test of the Twilio client against Twilio's own published API description: Prism
//! (`herald_testing::prism`) mocks `../shared/specs/twilio/twilio_api_v2010.messages.json`
//! and validates every request against it: sends (Create Message) and look-ups (List
//! Messages), seen through its recording proxy.

use herald_shared::config::TwilioConfig;
use herald_shared::providers::twilio::{
    Channel, Delivery, Lookup, Outgoing, Sender, Twilio, TwilioError,
};
use herald_testing::prism::{self, Exchange, Prism};
use secrecy::SecretString;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

fn config(base_url: &str) -> TwilioConfig {
    TwilioConfig {
        base_url: base_url.parse().unwrap(),
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: SecretString::from("test-auth-token"),
        sms_from: "+15005550006".to_owned(),
        whatsapp_from: "+14155238886".to_owned(),
        messaging_service_sid: String::new(),
        public_base_url: "https://herald.example.com".to_owned(),
        timeout_secs: 10,
        auth_failure_retry_secs: 60,
        sms_per_second: 1,
        whatsapp_per_second: 10,
        reply_window_secs: 604_800,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_look_ups_are_requests_twilios_published_api_description_accepts() {
    // Prism accepts anything whose schema it cannot compile; prove it compiles them all.
    let spec = prism::spec("twilio/twilio_api_v2010.messages.json");
    prism::assert_schemas_compile(&spec);
    let prism = Prism::start(&spec).await;
    let proxy = prism::start_proxy(&prism).await;
    let base_url = proxy.base_url.clone();

    let mut service = config(&base_url);
    service.messaging_service_sid = "MG0123456789abcdef0123456789abcdef".to_owned();
    for (what, config, channel) in [
        ("SMS", config(&base_url), Channel::Sms),
        ("WhatsApp", config(&base_url), Channel::Whatsapp),
        ("messaging service", service, Channel::Sms),
    ] {
        let twilio = Twilio::new(&config).unwrap();
        let sent = twilio
            .send(Outgoing {
                to: "+14155550100",
                channel,
                body: "Day 1: ¡hola! & welcome",
                sender: None,
                effect_id: uuid::Uuid::new_v4(),
            })
            .await;
        let exchange = proxy.last();
        assert!(exchange.status.is_success(), "{what}: {exchange:?}");
        assert!(
            exchange.request_violations().is_empty(),
            "{what}: Prism found violations: {exchange:?}"
        );
        let Ok(Delivery::Sent { sid: Some(sid) }) = sent else {
            panic!("{what}: {sent:?}");
        };
        assert!(sid.starts_with("SM"), "{what}: {sid}");
    }

    // A look-up: List Messages by `To` and `From`, following `next_page_uri`.
    // Prism answers every page with the description's own example, whose messages are not
    // the attempt and which always has a next page: the client reads its ten pages, then
    // says it could neither find nor rule out the message.
    let twilio = Twilio::new(&config(&base_url)).unwrap();
    let sender = Sender::From("+15005550006".to_owned());
    let sent_before = proxy.seen().len();
    let found = twilio
        .find_sent(&Lookup {
            to: "+14155550100",
            channel: Channel::Sms,
            sender: &sender,
            body: "Day 1: ¡hola! & welcome",
            since: chrono::Utc::now(),
            until: chrono::Utc::now(),
            skip: &[],
        })
        .await;
    assert!(
        matches!(found, Err(TwilioError::Unconfirmed { .. })),
        "{found:?}"
    );
    let pages: Vec<Exchange> = proxy.seen()[sent_before..].to_vec();
    assert_eq!(pages.len(), 10, "{pages:?}");
    for page in &pages {
        assert_eq!(page.method, axum::http::Method::GET);
        assert!(page.status.is_success(), "{page:?}");
        assert!(
            page.request_violations().is_empty(),
            "Prism found violations in a List Messages request: {page:?}"
        );
    }
    // The check can fail there too: a page size over Twilio's 1,000 is refused.
    let oversized = reqwest::Client::new()
        .get(format!(
            "{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        ))
        .basic_auth(ACCOUNT_SID, Some("test-auth-token"))
        .query(&[("To", "+14155550100"), ("PageSize", "5000")])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 422);
    let exchange = proxy.last();
    assert!(
        exchange
            .request_violations()
            .iter()
            .any(|violation| violation["message"].to_string().contains("pagesize")),
        "{exchange:?}"
    );

    // The check can fail: a request without `To` is flagged...
    let broken = reqwest::Client::new()
        .post(format!(
            "{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        ))
        .basic_auth(ACCOUNT_SID, Some("test-auth-token"))
        .form(&[("From", "+15005550006"), ("Body", "no recipient")])
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 422);
    let exchange = proxy.last();
    assert!(
        exchange
            .request_violations()
            .iter()
            .any(|violation| violation["message"].to_string().contains("To")),
        "{exchange:?}"
    );
    // ...and so is the real client with a malformed account SID, which it reports as
    // permanent.
    let mut malformed = config(&base_url);
    malformed.account_sid = "AC123".to_owned();
    let refused = Twilio::new(&malformed)
        .unwrap()
        .send(Outgoing {
            to: "+14155550100",
            channel: Channel::Sms,
            body: "hi",
            sender: None,
            effect_id: uuid::Uuid::new_v4(),
        })
        .await;
    assert!(
        matches!(refused, Err(TwilioError::Permanent { status: 422, .. })),
        "{refused:?}"
    );
    assert!(!proxy.last().request_violations().is_empty());
}
