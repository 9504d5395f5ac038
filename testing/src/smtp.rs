//! The SMTP stand-in (`scripts/smtp_standin.py`, aiosmtpd, installed by
//! `scripts/standins.sh`) as a child process on a free port, writing to its own Maildir; and
//! the stored messages read back.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use uuid::Uuid;

use crate::process::free_port;
use crate::wait::PATIENCE;

/// The workspace root: `scripts/` and `.standins/` are found from here.
pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The running stand-in. Killed, and its Maildir removed, on drop.
pub struct SmtpStandin {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl SmtpStandin {
    /// Starts the stand-in; recipients whose local part starts with `slow-` are held
    /// `slow_seconds` in DATA (`reject-` get 550, `busy-` 451).
    pub async fn start(slow_seconds: f64) -> Self {
        let python = Path::new(WORKSPACE).join(".standins/smtp/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/standins.sh to install the SMTP stand-in",
            python.display()
        );
        let maildir = std::env::temp_dir().join(format!("herald-smtp-{}", Uuid::new_v4().simple()));
        // The script makes the directory before asking `mailbox.Maildir` to create the
        // mailbox, which then skips `tmp/`, `new/` and `cur/` (it only creates a missing
        // mailbox): every delivery would fail. Make them here.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub))
                .unwrap_or_else(|error| panic!("create {}: {error}", maildir.display()));
        }
        // A free port: bind port 0 and let it go. Another process could take it in between;
        // then our stand-in cannot bind, exits, and we try another port. Only its own
        // "listening" line proves the port is ours, so a foreign server on the port is never
        // mistaken for it.
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&python)
                .current_dir(WORKSPACE)
                .arg("scripts/smtp_standin.py")
                .args(["--port", &port.to_string()])
                .arg("--maildir")
                .arg(&maildir)
                .args(["--slow-seconds", &slow_seconds.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|error| panic!("start the SMTP stand-in: {error}"));
            let Some(stdout) = child.stdout.take() else {
                panic!("the SMTP stand-in has no stdout");
            };
            let (line_tx, line_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = line_tx.send(line);
                }
            });
            let mut standin = Self {
                child,
                port,
                maildir: maildir.clone(),
            };
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let mut announced = false;
            loop {
                announced |= line_rx.try_iter().any(|line| line.contains("listening on"));
                if announced
                    && tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                {
                    return standin;
                }
                if let Ok(Some(status)) = standin.child.try_wait() {
                    eprintln!(
                        "the SMTP stand-in on port {port} exited with {status}; trying another port"
                    );
                    // keep the Maildir for the next try
                    standin.maildir = PathBuf::new();
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the SMTP stand-in never listened on port {port}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        panic!("the SMTP stand-in could not start on any of three free ports");
    }

    /// The text of every file in the Maildir (`new/` and `cur/`), oldest first.
    fn texts(&self) -> Vec<String> {
        let mut found: Vec<(std::time::SystemTime, String)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                // a file being renamed from tmp/ may vanish between listing and reading
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                found.push((modified, text));
            }
        }
        found.sort();
        found.into_iter().map(|(_, text)| text).collect()
    }

    /// Every message in the Maildir, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.texts()
            .iter()
            .map(|text| Message::parse(text))
            .collect()
    }

    /// The effect ids named by the Message-IDs in the Maildir, oldest first.
    pub fn effect_ids(&self) -> Vec<Uuid> {
        self.messages()
            .iter()
            .map(|message| {
                message.effect_id().unwrap_or_else(|| {
                    panic!("a stored message names no effect: {:?}", message.headers)
                })
            })
            .collect()
    }

    /// Effect id → number of copies in the Maildir.
    pub fn copies_by_effect(&self) -> HashMap<Uuid, usize> {
        let mut copies = HashMap::new();
        for id in self.effect_ids() {
            *copies.entry(id).or_insert(0) += 1;
        }
        copies
    }

    /// The whole text of the newest message to `to`.
    pub fn text_to(&self, to: &str) -> Option<String> {
        self.texts().into_iter().rev().find(|text| {
            Message::parse(text)
                .header("to")
                .is_some_and(|header| header.eq_ignore_ascii_case(to))
        })
    }
}

impl Drop for SmtpStandin {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            eprintln!(
                "the SMTP stand-in on port {} had exited early: {status}",
                self.port
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.maildir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.maildir);
        }
    }
}

/// The headers of one stored message (lower-cased names; folded lines joined).
#[derive(Debug, Clone)]
pub struct Message {
    pub headers: BTreeMap<String, String>,
}

impl Message {
    fn parse(text: &str) -> Self {
        let mut headers = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = &mut current {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if let Some((name, value)) = current.take() {
                headers.insert(name, value);
            }
            if let Some((name, value)) = line.split_once(':') {
                current = Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        if let Some((name, value)) = current {
            headers.insert(name, value);
        }
        Self { headers }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The effect id in `Message-ID: <effect_id@herald>`.
    pub fn effect_id(&self) -> Option<Uuid> {
        let id = self.header("message-id")?;
        let inner = id.strip_prefix('<')?.strip_suffix("@herald>")?;
        inner.parse().ok()
    }
}
