//! A Twilio stand-in for fault tests: a stateful Messages API (create a message, List
//! Messages) that can, for one recipient, create the message and then fail to answer —
//! stall past the client's timeout, reset the connection, or answer 500 — or reset the
//! connection before creating anything. List Messages shows what was created, filtered by
//! `To`, `From` and `DateSent>` and paged by `PageSize` with `next_page_uri`, as Twilio's.
//!
//! Plain HTTP/1.1 over a TCP listener rather than wiremock or axum: only the socket itself
//! can be reset after the request was read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the stand-in answers a create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Creates the message, then never answers (until the client hangs up).
    Stall,
    /// Creates the message, then resets the connection.
    Reset,
    /// Creates the message, then answers 500.
    ServerError,
    /// Resets the connection without creating anything.
    ResetBeforeCreating,
}

/// A message the stand-in created.
#[derive(Debug, Clone)]
pub struct Created {
    pub sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State {
    created: Vec<Created>,
    /// Create requests per `To`, whatever their answer.
    creates: HashMap<String, usize>,
    /// The fault for the next create request to each `To`, applied once.
    faults: HashMap<String, Fault>,
    /// How long a create's answer waits after the message was created.
    answer_delay: std::time::Duration,
}

/// The stand-in, serving on 127.0.0.1 in this process until the test ends.
#[derive(Clone)]
pub struct TwilioStandin {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl TwilioStandin {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let standin = Self {
            base_url: format!("http://{}", listener.local_addr()?),
            state: Arc::default(),
        };
        let server = standin.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(server.clone().serve(socket));
            }
        });
        Ok(standin)
    }

    /// Every later create is answered `delay` after the message was created (a slow Twilio:
    /// a worker killed meanwhile leaves messages Twilio has but Herald never heard of).
    pub fn answer_after(&self, delay: std::time::Duration) {
        self.lock().answer_delay = delay;
    }

    /// The next create request to `to` (as Twilio names it) meets `fault`; later ones do not.
    pub fn fail_next(&self, to: &str, fault: Fault) {
        self.lock().faults.insert(to.to_owned(), fault);
    }

    /// The messages created for `to`.
    pub fn created_for(&self, to: &str) -> Vec<Created> {
        let state = self.lock();
        state
            .created
            .iter()
            .filter(|m| m.to == to)
            .cloned()
            .collect()
    }

    /// How many create requests to `to` arrived, whatever their answer.
    pub fn creates_for(&self, to: &str) -> usize {
        self.lock().creates.get(to).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One connection: requests until the client hangs up or a fault ends it.
    async fn serve(self, socket: TcpStream) {
        let mut reader = BufReader::new(socket);
        while let Some((method, target, body)) = read_request(&mut reader).await {
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let answer = match (method.as_str(), path.ends_with("/Messages.json")) {
                ("POST", true) => match self.create(&body) {
                    Ok(answer) => {
                        let delay = self.lock().answer_delay;
                        tokio::time::sleep(delay).await;
                        answer
                    }
                    Err(Fault::Stall) => {
                        // silent until the client gives up and closes
                        let mut rest = Vec::new();
                        let _ = reader.read_to_end(&mut rest).await;
                        return;
                    }
                    Err(Fault::Reset | Fault::ResetBeforeCreating) => {
                        let _ = reader.get_ref().set_zero_linger();
                        return;
                    }
                    Err(Fault::ServerError) => (
                        500,
                        json!({"code": 20500, "status": 500,
                        "message": "Internal Server Error"}),
                    ),
                },
                ("GET", true) => (200, self.list(path, query)),
                _ => (
                    404,
                    json!({"code": 20404, "status": 404, "message": "Not Found"}),
                ),
            };
            if write_answer(reader.get_mut(), answer).await.is_err() {
                return;
            }
        }
    }

    /// Creates the message of a form, unless the recipient's fault says otherwise.
    fn create(&self, form: &[u8]) -> Result<(u16, Value), Fault> {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(form).into_owned().collect();
        let to = form.get("To").cloned().unwrap_or_default();
        let mut state = self.lock();
        *state.creates.entry(to.clone()).or_default() += 1;
        let fault = state.faults.remove(&to);
        if fault == Some(Fault::ResetBeforeCreating) {
            return Err(Fault::ResetBeforeCreating);
        }
        let message = Created {
            sid: format!("SM{:032x}", state.created.len() + 1),
            to,
            from: form.get("From").cloned(),
            messaging_service_sid: form.get("MessagingServiceSid").cloned(),
            body: form.get("Body").cloned().unwrap_or_default(),
            created: Utc::now(),
        };
        let answer = (201, resource(&message));
        state.created.push(message);
        fault.map_or(Ok(answer), Err)
    }

    /// One page of List Messages, newest first.
    fn list(&self, path: &str, query: &str) -> Value {
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let param = |name: &str| params.get(name).map(String::as_str);
        // `DateSent>=2026-12-07` or an RFC 3339 instant, as Twilio's helper libraries send
        let sent_after = param("DateSent>").and_then(|date| {
            DateTime::parse_from_rfc3339(date)
                .map(|instant| instant.to_utc())
                .or_else(|_| {
                    NaiveDate::parse_from_str(date, "%Y-%m-%d")
                        .map(|day| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                })
                .ok()
        });
        let page_size: usize = param("PageSize").and_then(|n| n.parse().ok()).unwrap_or(50);
        let page: usize = param("Page").and_then(|n| n.parse().ok()).unwrap_or(0);
        let state = self.lock();
        let mut matching: Vec<&Created> = state
            .created
            .iter()
            .filter(|m| param("To").is_none_or(|to| m.to == to))
            .filter(|m| param("From").is_none_or(|from| m.from.as_deref() == Some(from)))
            .filter(|m| sent_after.is_none_or(|after| m.created >= after))
            .collect();
        matching.reverse();
        let start = (page * page_size).min(matching.len());
        let end = (start + page_size).min(matching.len());
        let next_page_uri = (end < matching.len()).then(|| {
            let mut next = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in params.iter().filter(|(name, _)| !name.starts_with("Page")) {
                next.append_pair(name, value);
            }
            next.append_pair("PageSize", &page_size.to_string());
            next.append_pair("Page", &(page + 1).to_string());
            next.append_pair("PageToken", &format!("PA{}", page + 1));
            format!("{path}?{}", next.finish())
        });
        json!({
            "messages": matching[start..end].iter().map(|m| resource(m)).collect::<Vec<_>>(),
            "next_page_uri": next_page_uri,
            "page": page,
            "page_size": page_size,
        })
    }
}

/// A message as Twilio's Message resource shows it (dates in RFC 2822).
fn resource(message: &Created) -> Value {
    let date = message.created.to_rfc2822();
    json!({
        "sid": message.sid,
        "to": message.to,
        "from": message.from,
        "messaging_service_sid": message.messaging_service_sid,
        "body": message.body,
        "status": "sent",
        "direction": "outbound-api",
        "date_created": date,
        "date_sent": date,
        "date_updated": date,
    })
}

/// Reads one request: method, target and body; `None` when the client hung up.
async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some((method, target, body))
}

async fn write_answer(socket: &mut TcpStream, (status, body): (u16, Value)) -> std::io::Result<()> {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        if status < 400 { "OK" } else { "Error" },
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await
}
