//! Contract test of the Twilio client against Twilio's own published API description: Prism
//! (`scripts/standins.sh` installs it) mocks `../shared/specs/twilio/twilio_api_v2010.messages.json`
//! and validates every request against it: sends (Create Message) and look-ups (List
//! Messages). A small recording proxy sits between the client
//! and Prism, so the test sees Prism's verdict (`sl-violations`) on the real client's
//! requests. One Prism process, started inside the one test (nextest runs each test in its
//! own process, so a shared cell would not be shared).

use std::io::{BufRead, BufReader};
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use herald_shared::config::TwilioConfig;
use herald_shared::providers::twilio::{
    Channel, Delivery, Lookup, Outgoing, Sender, Twilio, TwilioError,
};
use secrecy::SecretString;
use serde_json::Value;

use herald_testing::smtp::WORKSPACE;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const PRISM_PATIENCE: Duration = Duration::from_secs(60);

fn spec() -> PathBuf {
    Path::new(WORKSPACE).join("../shared/specs/twilio/twilio_api_v2010.messages.json")
}

fn prism_modules() -> PathBuf {
    Path::new(WORKSPACE).join(".standins/prism/node_modules")
}

/// `prism mock` on the Twilio spec, on a free port. Killed on drop.
struct Prism {
    child: Child,
    port: u16,
}

impl Prism {
    async fn start() -> Self {
        let prism = prism_modules().join(".bin/prism");
        assert!(
            prism.exists(),
            "{} is missing: run scripts/standins.sh to install Prism",
            prism.display()
        );
        // As for the SMTP stand-in: a port picked by binding port 0 may be taken before Prism
        // binds it, so only Prism's own "listening" line proves the port is ours.
        for _ in 0..3 {
            let port = StdTcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&prism)
                .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
                .arg(spec())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start Prism");
            let stdout = child.stdout.take().unwrap();
            let (line_tx, line_rx) = std::sync::mpsc::channel();
            // keeps draining Prism's log (lines per request) so it never blocks on a full pipe
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = line_tx.send(line);
                }
            });
            let mut prism = Self { child, port };
            let deadline = tokio::time::Instant::now() + PRISM_PATIENCE;
            let mut announced = false;
            loop {
                announced |= line_rx
                    .try_iter()
                    .any(|line| line.contains(&format!("listening on http://127.0.0.1:{port}")));
                if announced {
                    return prism;
                }
                if let Some(status) = prism.child.try_wait().unwrap() {
                    eprintln!("Prism on port {port} exited with {status}; trying another port");
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "Prism never listened on port {port}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("Prism could not start on any of three free ports");
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request through the proxy and Prism's answer.
#[derive(Debug, Clone)]
struct Exchange {
    /// The request's method.
    method: axum::http::Method,
    status: StatusCode,
    /// The `sl-violations` header entries: problems Prism let through (it still answered).
    violations: Vec<Value>,
    /// The `validation` list of Prism's own 422 problem: the request was refused.
    refused_for: Vec<Value>,
}

impl Exchange {
    /// Problems Prism found in the request (not in its own generated response).
    fn request_violations(&self) -> Vec<&Value> {
        self.violations
            .iter()
            .filter(|violation| violation["location"][0] == "request")
            .chain(&self.refused_for)
            .collect()
    }
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Exchange>>>,
}

/// Forwards a request to Prism unchanged and records Prism's verdict.
async fn forward(State(proxy): State<Proxy>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = proxy
        .http
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let status = answer.status();
    let violations = answer
        .headers()
        .get_all("sl-violations")
        .iter()
        .flat_map(|value| {
            serde_json::from_slice::<Vec<Value>>(value.as_bytes())
                .unwrap_or_else(|err| panic!("unreadable sl-violations header ({err}): {value:?}"))
        })
        .collect();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().await.unwrap();
    let refused_for = if status == StatusCode::UNPROCESSABLE_ENTITY {
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        problem["validation"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    proxy.seen.lock().unwrap().push(Exchange {
        method: parts.method,
        status,
        violations,
        refused_for,
    });
    let mut response = Response::builder().status(status);
    if let Some(content_type) = content_type {
        response = response.header("content-type", content_type);
    }
    response.body(Body::from(bytes)).unwrap()
}

/// Starts the proxy to `prism`; returns its base URL and the exchanges it records.
async fn start_proxy(prism: &Prism) -> (String, Arc<Mutex<Vec<Exchange>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream: format!("http://127.0.0.1:{}", prism.port),
        http: reqwest::Client::new(),
        seen: seen.clone(),
    };
    let router = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), seen)
}

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

/// The last exchange the proxy recorded.
fn last(seen: &Mutex<Vec<Exchange>>) -> Exchange {
    seen.lock()
        .unwrap()
        .last()
        .cloned()
        .expect("no request reached Prism")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_look_ups_are_requests_twilios_published_api_description_accepts() {
    // Prism accepts anything whose schema it cannot compile; prove it compiles them all.
    let check = Command::new("node")
        .env("NODE_PATH", prism_modules())
        .arg(Path::new(WORKSPACE).join("../shared/specs/check_prism_schemas.js"))
        .arg(spec())
        .output()
        .expect("run node");
    assert!(
        check.status.success(),
        "check_prism_schemas.js: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let prism = Prism::start().await;
    let (base_url, seen) = start_proxy(&prism).await;

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
        let exchange = last(&seen);
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
    let sent_before = seen.lock().unwrap().len();
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
    let pages: Vec<Exchange> = seen.lock().unwrap()[sent_before..].to_vec();
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
    let exchange = last(&seen);
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
    let exchange = last(&seen);
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
    assert!(!last(&seen).request_violations().is_empty());
}
