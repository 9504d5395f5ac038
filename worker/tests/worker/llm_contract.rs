//! Contract test of the LLM client (`herald_shared::providers::llm`) against OpenAI's own
//! published description of chat completions: Prism (`herald_testing::prism`) on
//! `../shared/specs/openai/openapi.chat-completions.yaml` checks each request the real client
//! sends, and answers with the description's own examples.

use herald_shared::providers::llm::{LlmClient, LlmError, Request, Written};
use herald_testing::prism::{self, Prism};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_calls_are_requests_openais_published_api_description_accepts() {
    let spec = prism::spec("openai/openapi.chat-completions.yaml");
    prism::assert_schemas_compile(&spec);
    let prism = Prism::start(&spec).await;
    let proxy = prism::start_proxy(&prism).await;
    let client = LlmClient::new(std::time::Duration::from_secs(30), None).unwrap();
    let base_url = format!("{}/v1", proxy.base_url);
    let request = Request {
        base_url: &base_url,
        api_key: "sk-test",
        model: "gpt-4o-mini",
        prompt: "Write to Ada at Acme about “Q1” — briefly.",
        max_output_tokens: 1024,
    };

    let answer = client.write_email(&request).await;

    let exchange = proxy.last();
    assert!(exchange.status.is_success(), "{exchange:?}");
    assert!(
        exchange.request_violations().is_empty(),
        "Prism found violations: {exchange:?}"
    );
    // the description's example answers in prose, not the JSON asked for: unusable, with the
    // usage it reports
    let answer = answer.unwrap();
    assert!(answer.usage.is_some(), "{answer:?}");
    assert!(
        matches!(&answer.written, Written::Unusable(reason) if reason.contains("not the JSON")),
        "{answer:?}"
    );

    // OpenAI's own 429 is read as a throttled, retryable answer
    proxy.prefer(Some("code=429"));
    let throttled = client.write_email(&request).await;
    assert_eq!(proxy.last().status, 429);
    assert!(
        matches!(
            throttled,
            Err(LlmError::Retryable {
                throttled: true,
                ..
            })
        ),
        "{throttled:?}"
    );

    // the check can fail: a request with no messages is refused
    proxy.prefer(None);
    let broken = reqwest::Client::new()
        .post(format!("{base_url}/chat/completions"))
        .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": []}))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 422);
    assert!(!proxy.last().request_violations().is_empty());
}
