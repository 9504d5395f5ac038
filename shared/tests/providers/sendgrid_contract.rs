//! Contract test of the SendGrid client against SendGrid's own published API description:
//! Prism (`herald_testing::prism`) mocks `../shared/specs/sendgrid/tsg_mail_v3.json` and
//! validates every Mail Send request the real client sends, seen through its recording proxy,
//! and answers with the description's own statuses and error bodies.

use herald_shared::providers::sendgrid::{Accepted, SendGrid, SendGridError};
use herald_testing::prism::{self, Prism};

use crate::{outreach_email, sendgrid_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_sends_are_requests_sendgrids_published_api_description_accepts() {
    // Prism accepts anything whose schema it cannot compile; prove it compiles them all.
    let spec = prism::spec("sendgrid/tsg_mail_v3.json");
    prism::assert_schemas_compile(&spec);
    let prism = Prism::start(&spec).await;
    let proxy = prism::start_proxy(&prism).await;
    let sendgrid = SendGrid::new(&sendgrid_config(&proxy.base_url, 10)).unwrap();
    // a follow-up with a reply-to address: every optional part of the request is present
    let email = outreach_email();
    assert!(email.reply_to.is_some() && email.thread.len() == 2);

    let sent = sendgrid.send("SG.test-key", &email).await;

    let exchange = proxy.last();
    assert_eq!(exchange.status, 202, "{exchange:?}");
    assert!(
        exchange.request_violations().is_empty(),
        "Prism found violations: {exchange:?}"
    );
    // the proxy passes no `X-Message-Id` on (Prism sends none): accepted without one
    assert_eq!(sent, Ok(Accepted { message_id: None }));

    // The check can fail: the real client with an address that is none is refused with the
    // description's 400, which the client reports as permanent.
    let mut broken = outreach_email();
    broken.to = "not-an-address".to_owned();
    let refused = sendgrid.send("SG.test-key", &broken).await;
    let exchange = proxy.last();
    assert_eq!(exchange.status, 400, "{exchange:?}");
    assert!(
        exchange
            .request_violations()
            .iter()
            .any(|violation| violation.to_string().contains("email")),
        "{exchange:?}"
    );
    assert!(
        matches!(refused, Err(SendGridError::Permanent { status: 400, .. })),
        "{refused:?}"
    );

    // The description's own error answers are read as the client's classes.
    for (prefer, expected) in [
        ("code=500", "Unconfirmed"),
        ("code=401", "CredentialsRefused"),
        ("code=403", "CredentialsRefused"),
        ("code=413", "Permanent"),
    ] {
        proxy.prefer(Some(prefer));
        let failed = sendgrid.send("SG.test-key", &email).await;
        let exchange = proxy.last();
        assert!(
            exchange.request_violations().is_empty(),
            "{prefer}: {exchange:?}"
        );
        let class = match &failed {
            Err(SendGridError::Unconfirmed { .. }) => "Unconfirmed",
            Err(SendGridError::CredentialsRefused { .. }) => "CredentialsRefused",
            Err(SendGridError::Permanent { .. }) => "Permanent",
            _ => "other",
        };
        assert_eq!(class, expected, "{prefer}: {failed:?}");
    }
}
