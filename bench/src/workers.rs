//! The `herald-worker` replicas of a run: started with their output in
//! `worker-<i>.log`, waited for until healthy, watched while they work, stopped at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::process::{free_port, get_ok, rss_kib};

/// The running replicas, in start order (replica `i` logs to `worker-<i>.log`).
pub struct Workers {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Workers {
    /// No replicas yet; their logs will go to `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            children: Vec::new(),
            dir: dir.to_owned(),
        }
    }

    /// Starts `replicas` workers, each `herald-worker run` from `command()` with its own
    /// health port and replica name, and waits until each answers `/healthz`; returns their
    /// ports. `what` is the error context of a failed spawn.
    pub async fn start(
        &mut self,
        replicas: usize,
        what: &str,
        mut command: impl FnMut() -> anyhow::Result<Command>,
    ) -> anyhow::Result<Vec<u16>> {
        let mut ports = Vec::new();
        for i in 0..replicas {
            let port = free_port()?;
            let log = std::fs::File::create(self.log(i))?;
            let child = command()?
                .arg("run")
                .env("HERALD_WORKER__LISTEN", format!("127.0.0.1:{port}"))
                .env("HERALD_WORKER__REPLICA_NAME", format!("bench-{i}"))
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| what.to_owned())?;
            self.children.push(child);
            ports.push(port);
        }
        for (i, port) in ports.iter().enumerate() {
            self.wait_healthy(i, *port).await?;
        }
        Ok(ports)
    }

    async fn wait_healthy(&mut self, i: usize, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.children[i].try_wait()? {
                bail!(
                    "worker {i} exited with {status}; see {}",
                    self.log(i).display()
                );
            }
            if get_ok(port, "/healthz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("worker {i} not healthy on port {port} after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Raises `peaks[i]` to replica `i`'s RSS now; fails when a replica has exited (`worker
    /// <i> exited <when> with …`), since the measurement would then be meaningless.
    pub fn sample_rss(&mut self, peaks: &mut [u64], when: &str) -> anyhow::Result<()> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                bail!("worker {i} exited {when} with {status}");
            }
            peaks[i] = peaks[i].max(rss_kib(child.id())?);
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The replicas, for stopping them.
    pub fn children_mut(&mut self) -> std::slice::IterMut<'_, Child> {
        self.children.iter_mut()
    }

    /// The log files of the replicas started so far.
    pub fn logs(&self) -> Vec<PathBuf> {
        (0..self.children.len()).map(|i| self.log(i)).collect()
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("worker-{i}.log"))
    }
}
