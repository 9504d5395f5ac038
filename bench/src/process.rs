//! Child processes from the outside: finding a sibling binary, a free port for it, asking it
//! for a health page, reading its memory and CPU time from `/proc`, and stopping it.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A herald binary from next to the running benchmark, which must have been built with it.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let binary = std::env::current_exe()?.with_file_name(name);
    if !binary.exists() {
        bail!(
            "{} not found; build it with `cargo build --release --bins`",
            binary.display()
        );
    }
    Ok(binary)
}

/// A port that was free a moment ago, for a child process to listen on.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One `GET path` on 127.0.0.1 over HTTP/1.0; true on a 200. Plain TCP, so a health check
/// needs no HTTP client.
pub async fn get_ok(port: u16, path: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(response)) => {
            let status_line = response.split(|b| *b == b'\n').next().unwrap_or_default();
            String::from_utf8_lossy(status_line).contains(" 200 ")
        }
        _ => false,
    }
}

/// Resident memory of a process, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// utime + stime of a process in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields that follow it do not.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second for `/proc` times (`getconf CLK_TCK`; 100 on Linux in practice).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// SIGTERM (graceful shutdown), then SIGKILL if the process is still running after 40 s
/// (the worker's 25 s shutdown timeout and some slack).
pub async fn stop(child: &mut Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .context("run kill")?;
    if !status.success() {
        bail!("kill -TERM failed: {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill()?;
    child.wait()?;
    bail!("did not stop within 40 s of SIGTERM; killed")
}

/// [`stop`]s each child in turn; a failure is only reported (as `warning: stopping <what>
/// <pid>: …`), so teardown goes on with the rest.
pub async fn stop_all<'a>(children: impl IntoIterator<Item = &'a mut Child>, what: &str) {
    for child in children {
        if let Err(err) = stop(child).await {
            eprintln!("warning: stopping {what} {}: {err:#}", child.id());
        }
    }
}
