//! Prism, the contract stand-in for providers' HTTP APIs (`scripts/standins.sh` installs it):
//! `prism mock` on a provider's published API description in `../shared/specs/`, and a small
//! recording proxy in front of it so a test sees Prism's verdict (`sl-violations`, or its own
//! 422) on the real client's requests. One Prism process per test (nextest runs each test in
//! its own process, so a shared one would not be shared).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a stand-in that cannot start or forward fails the test at once"
)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::smtp::WORKSPACE;

const PRISM_PATIENCE: Duration = Duration::from_secs(60);

/// A provider description in `../shared/specs/` (`twilio/…`, `openai/…`).
pub fn spec(relative: &str) -> PathBuf {
    Path::new(WORKSPACE).join("../shared/specs").join(relative)
}

/// Prism accepts anything whose schema it cannot compile: asserts that it compiles every
/// schema of `spec` (`../shared/specs/check_prism_schemas.js`).
pub fn assert_schemas_compile(spec: &Path) {
    let check = Command::new("node")
        .env("NODE_PATH", prism_modules())
        .arg(Path::new(WORKSPACE).join("../shared/specs/check_prism_schemas.js"))
        .arg(spec)
        .output()
        .expect("run node");
    assert!(
        check.status.success(),
        "check_prism_schemas.js: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

fn prism_modules() -> PathBuf {
    Path::new(WORKSPACE).join(".standins/prism/node_modules")
}

/// `prism mock` on one description, on a free port. Killed on drop.
pub struct Prism {
    child: Child,
    port: u16,
}

impl Prism {
    pub async fn start(spec: &Path) -> Self {
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
                .arg(spec)
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
pub struct Exchange {
    /// The request's method.
    pub method: axum::http::Method,
    pub status: StatusCode,
    /// The `sl-violations` header entries: problems Prism let through (it still answered).
    pub violations: Vec<Value>,
    /// The `validation` list of Prism's own 422 problem: the request was refused.
    pub refused_for: Vec<Value>,
}

impl Exchange {
    /// Problems Prism found in the request (not in its own generated response).
    pub fn request_violations(&self) -> Vec<&Value> {
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
    prefer: Arc<Mutex<Option<String>>>,
}

/// The recording proxy in front of Prism.
pub struct Recorder {
    /// The base URL clients are given.
    pub base_url: String,
    seen: Arc<Mutex<Vec<Exchange>>>,
    prefer: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    /// Every exchange so far, in order.
    pub fn seen(&self) -> Vec<Exchange> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last exchange.
    pub fn last(&self) -> Exchange {
        self.seen()
            .last()
            .cloned()
            .expect("no request reached Prism")
    }

    /// Adds Prism's `Prefer` header to the requests from now on (`code=429`: answer with the
    /// description's 429), or stops adding it.
    pub fn prefer(&self, prefer: Option<&str>) {
        *self.prefer.lock().unwrap_or_else(PoisonError::into_inner) = prefer.map(str::to_owned);
    }
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
    let prefer = proxy.prefer.lock().unwrap().clone();
    if let Some(prefer) = prefer {
        upstream = upstream.header("prefer", prefer);
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

/// Starts the recording proxy to `prism`.
pub async fn start_proxy(prism: &Prism) -> Recorder {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let prefer = Arc::new(Mutex::new(None));
    let proxy = Proxy {
        upstream: format!("http://127.0.0.1:{}", prism.port),
        http: reqwest::Client::new(),
        seen: seen.clone(),
        prefer: prefer.clone(),
    };
    let router = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Recorder {
        base_url: format!("http://{address}"),
        seen,
        prefer,
    }
}
