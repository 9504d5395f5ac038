//! The API contract, checked from outside: schemathesis fuzzes the real herald-api against
//! the `/openapi.json` it serves, and Redocly CLI lints the committed `openapi.json`. Both
//! tools are pinned and installed by `scripts/standins.sh`.
//!
//! The schemathesis run is bounded by `--max-examples` (per operation and phase), not by
//! time, so it does the same amount of work on a slow machine. Outside CI its seed is random
//! on purpose: every run explores other inputs, and a failure prints the `Seed:` that
//! reproduces it (`schemathesis run … --seed N`). Under `CI=true` the seed is fixed
//! ([`CI_SEED`], or `HERALD_CONTRACT_SEED`), so whether a change lands depends on the change,
//! not on which inputs one run happened to draw; the random runs of every developer's
//! `scripts/test` keep exploring.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stack::Stack;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The checks the issue names; together they hold every answer to the document.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,negative_data_rejection,ignored_auth";

/// Examples per operation in the fuzzing phase (the coverage phase, most of the run, tries
/// each constraint's boundaries regardless): two to three minutes on two cores.
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

/// Records of the account, so operations on an id reach past "not found": schemathesis
/// draws path ids (and the ids in delivery and schedule bodies) from them half the time.
struct Seeds {
    course: String,
    question: String,
    group: String,
    student: String,
    schedule: String,
    delivery: String,
    job: String,
}

async fn seed(api: &str, token: &str) -> Seeds {
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = client
            .post(format!("{api}/api/v1/{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.expect("seed request");
            assert_eq!(response.status(), StatusCode::CREATED, "seed {body}");
            response.json::<Value>().await.expect("seed answer")
        }
    };
    let id = |value: &Value| value["id"].as_str().expect("id").to_owned();
    let course = post(
        "courses",
        json!({"name": "Seed", "author": "Contract", "days": [
            {"text": "Day one", "questions": [{"question": "Two plus two?", "type": "choice",
                "options": ["4", "5"], "correct_answer": "4"}]},
            {"text": "Day two"}]}),
    )
    .await;
    let question = course["days"][0]["questions"][0]["id"]
        .as_str()
        .expect("question id")
        .to_owned();
    let group = id(&post("groups", json!({"name": "Seed group"})).await);
    let student = id(&post(
        &format!("groups/{group}/students"),
        json!({"name": "Ada", "phone": "+919876543210", "channel": "sms", "timezone": "Asia/Kolkata"}),
    )
    .await);
    let schedule = id(&post(
        "schedules",
        json!({"name": "Seed", "cron": "0 8 * * *", "timezone": "recipient",
            "action": {"type": "group_message", "group_id": group, "text": "Hello"}}),
    )
    .await);
    let delivery = id(&post(
        "deliveries",
        json!({"group_id": group, "course_id": id(&course), "start_at": "2099-01-01 09:00:00"}),
    )
    .await);
    let jobs: Value = client
        .get(format!("{api}/api/v1/jobs?limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("jobs")
        .json()
        .await
        .expect("jobs page");
    Seeds {
        course: id(&course),
        question,
        group,
        student,
        schedule,
        delivery,
        job: id(&jobs["items"][0]),
    }
}

/// schemathesis's configuration: the seeded ids as dictionaries bound to the parameters and
/// body fields that take them.
fn config(seeds: &Seeds) -> String {
    let mut toml = String::from("[dictionaries]\n");
    for (name, value) in [
        ("course", &seeds.course),
        ("question", &seeds.question),
        ("group", &seeds.group),
        ("student", &seeds.student),
        ("schedule", &seeds.schedule),
        ("delivery", &seeds.delivery),
        ("job", &seeds.job),
    ] {
        toml.push_str(&format!("{name} = {{ values = [\"{value}\"] }}\n"));
    }
    toml.push_str("day = { values = [1, 2] }\n");
    let bind = |dictionary: &str| format!("{{ dictionary = \"{dictionary}\", probability = 0.5 }}");
    for (path, bindings) in [
        (
            "^/api/v1/courses/[{]id[}]",
            vec![("path.id", "course"), ("path.day", "day")],
        ),
        ("^/api/v1/questions/", vec![("path.id", "question")]),
        ("^/api/v1/groups/[{]id[}]", vec![("path.id", "group")]),
        ("^/api/v1/students/", vec![("path.id", "student")]),
        (
            "^/api/v1/schedules/[{]id[}]",
            vec![("path.id", "schedule"), ("body.action.group_id", "group")],
        ),
        (
            "^/api/v1/schedules$",
            vec![("body.action.group_id", "group")],
        ),
        (
            "^/api/v1/deliveries/[{]id[}]",
            vec![("path.id", "delivery")],
        ),
        (
            "^/api/v1/deliveries(/preview)?$",
            vec![("body.group_id", "group"), ("body.course_id", "course")],
        ),
        ("^/api/v1/jobs/", vec![("path.id", "job")]),
    ] {
        let parameters: Vec<String> = bindings
            .iter()
            .map(|(key, dictionary)| format!("\"{key}\" = {}", bind(dictionary)))
            .collect();
        toml.push_str(&format!(
            "\n[[operations]]\ninclude-path-regex = '{path}'\nparameters = {{ {} }}\n",
            parameters.join(", ")
        ));
    }
    toml
}

/// The seed CI runs with (any fixed number; changed only on purpose).
const CI_SEED: &str = "20261207";

/// `HERALD_CONTRACT_SEED` when set, [`CI_SEED`] under `CI=true`, else none (random).
fn fixed_seed() -> Option<String> {
    std::env::var("HERALD_CONTRACT_SEED")
        .ok()
        .filter(|seed| !seed.is_empty())
        .or_else(|| (std::env::var("CI").as_deref() == Ok("true")).then(|| CI_SEED.to_owned()))
}

#[tokio::test]
async fn the_running_api_answers_as_its_openapi_document_says() {
    let schemathesis = tool(".standins/contract/bin/schemathesis");
    let mut stack = Stack::new(0.0).await;
    stack.start_api().await;
    let token = sign_up(&stack.api_url).await;
    let seeds = seed(&stack.api_url, &token).await;
    let scratch = std::env::temp_dir().join(format!("herald-contract-{}", stack.id));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let config_file = scratch.join("schemathesis.toml");
    std::fs::write(&config_file, config(&seeds)).expect("schemathesis.toml");

    let mut command = Command::new(schemathesis);
    command
        .current_dir(&scratch)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config_file)
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
        // one worker: with several threads, CPython 3.11's ast.parse (which hypothesis calls to
        // describe filters) can fail with "AST constructor recursion depth mismatch"
        // (a race in CPython 3.11's AST validator), a tool crash that is no finding about the API
        .args(["--workers", "1"])
        .arg("--no-color");
    for operation in EXCLUDED {
        command.args(["--exclude-operation-id", operation]);
    }
    if let Some(seed) = fixed_seed() {
        command.args(["--seed", &seed]);
    }
    let output = command.output().expect("run schemathesis");
    let report = text(&output);
    // the summary, for `--no-capture` runs and the CI log of a failure
    if let Some(at) = report.find("SUMMARY") {
        eprintln!("{}", &report[at..]);
    }
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
