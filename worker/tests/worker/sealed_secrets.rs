//! E-mails carrying a sealed secret (a verification or reset token): opened at send time,
//! removed from the row once sent, and failed for good when the key cannot open them.

use herald_shared::db::outbound_messages;
use herald_shared::effects::{EffectKind, EmailPayload, MessageSource, SECRET_PLACEHOLDER};
use herald_shared::secrets::SecretBox;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestWorker;

/// Plans an e-mail carrying `sealed`; its id and its payload as planned (read before the
/// commit: once committed, the worker may send it, and remove the secret, at any moment).
async fn plan_sealed(test: &TestWorker, to: &str, sealed: String) -> (Uuid, Value) {
    let payload = EmailPayload {
        to: to.to_owned(),
        subject: "Confirm".to_owned(),
        text: format!("code: {SECRET_PLACEHOLDER}\n"),
        sealed_secret: Some(sealed),
    };
    let mut tx = test.db().begin().await.unwrap();
    let id = outbound_messages::plan_email(
        &mut tx,
        test.account_id,
        MessageSource::AuthEmail,
        &test.jobs.get(EffectKind::Email).queue,
        format!("test:{}", Uuid::new_v4()),
        &payload,
    )
    .await
    .unwrap()
    .unwrap();
    let planned = sqlx::query_scalar("select payload from effects where id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (id, planned)
}

async fn payload(test: &TestWorker, id: Uuid) -> Value {
    sqlx::query_scalar("select payload from effects where id = $1")
        .bind(id)
        .fetch_one(test.db())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_secret_is_opened_to_send_and_removed_once_sent() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let ours = SecretBox::from_config(&test.env.config);
    let (id, planned) =
        plan_sealed(&test, "ada@example.com", ours.seal("the-token").unwrap()).await;
    assert!(planned.get("sealed_secret").is_some(), "{planned}");

    test.wait_for_state(id, "sandboxed").await;
    let after = payload(&test, id).await;
    assert!(after.get("sealed_secret").is_none(), "{after}");
    assert!(!after.to_string().contains("the-token"), "{after}");
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_sealed_with_another_key_fails_the_email_for_good() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let theirs = SecretBox::new(&[9; 32]);
    let (id, _) = plan_sealed(&test, "ada@example.com", theirs.seal("the-token").unwrap()).await;
    let row = test.wait_for_state(id, "failed").await;
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|error| error.contains("secret box")),
        "{:?}",
        row.last_error
    );
    test.finish().await;
}
