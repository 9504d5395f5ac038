//! The API contract, checked from outside: schemathesis fuzzes the real herald-api against
//! the `/openapi.json` it serves, and Redocly CLI lints the committed `openapi.json`. Both
//! tools are pinned and installed by `scripts/standins.sh`.
//!
//! The schemathesis run is bounded by `--max-examples` (per operation and phase), not by
//! time, so it does the same amount of work on a slow machine. Its seed is random on purpose:
//! every run explores other inputs, and a failure prints the `Seed:` that reproduces it
//! (`schemathesis run … --seed N`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stack::Stack;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The checks the issue names; together they hold every answer to the document.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,negative_data_rejection,ignored_auth";

/// Examples per operation and phase: about two minutes for the whole API on two cores.
const MAX_EXAMPLES: &str = "15";

/// Operations the run leaves out, and why:
/// - `v1.auth.logout` ends the session of the token every other request uses; its answers
///   are covered by the API tests (`api/tests/api/auth.rs`).
const EXCLUDED: [&str; 1] = ["v1.auth.logout"];

fn tool(relative: &str) -> PathBuf {
    let path = Path::new(ROOT).join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/standins.sh",
        path.display()
    );
    path
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Signs up an account and returns its access token.
async fn sign_up(api: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{api}/api/v1/auth/signup"))
        .json(&json!({"email": "contract@example.com", "password": "correct horse", "name": "Contract"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(response.status(), StatusCode::CREATED);
    let session: Value = response.json().await.expect("session");
    session["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test]
async fn the_running_api_answers_as_its_openapi_document_says() {
    let schemathesis = tool(".standins/contract/bin/schemathesis");
    let mut stack = Stack::new(0.0).await;
    stack.start_api().await;
    let token = sign_up(&stack.api_url).await;
    let scratch = std::env::temp_dir().join(format!("herald-contract-{}", stack.id));
    std::fs::create_dir_all(&scratch).expect("scratch dir");

    let mut command = Command::new(schemathesis);
    command
        .current_dir(&scratch)
        .env("NO_COLOR", "1")
        .arg("run")
        .arg(format!("{}/openapi.json", stack.api_url))
        .args(["--url", &stack.api_url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        // any string holding NUL is refused (PostgreSQL text cannot store it), as the
        // document's description says; generating them would only test that rule again
        .args(["--generation-allow-x00", "false"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .args(["--workers", "2"])
        .arg("--no-color");
    for operation in EXCLUDED {
        command.args(["--exclude-operation-id", operation]);
    }
    let output = command.output().expect("run schemathesis");
    let report = text(&output);
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not describe:\n{report}"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn the_committed_openapi_document_passes_redocly_lint() {
    let redocly = tool(".standins/redocly/node_modules/.bin/redocly");
    let output = Command::new(redocly)
        .current_dir(ROOT)
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .args(["lint", "openapi.json", "--config", "redocly.yaml"])
        .args(["--format", "stylish", "--max-problems", "1000"])
        .output()
        .expect("run redocly");
    // `redocly.yaml` extends `recommended-strict`: every warning is an error, so the exit
    // code alone says whether the document is clean
    assert!(
        output.status.success(),
        "redocly lint found problems in openapi.json:\n{}",
        text(&output)
    );
}
