//! Group commit for the two transitions every effect makes: `queued → sending` before the
//! provider call and `sending → sent/sandboxed` after it.
//!
//! Done alone, each is one UPDATE and one commit per effect, and at a few thousand effects a
//! second those statements and commits — not the rows — are what PostgreSQL spends its time
//! on (measured with `herald-bench`). So the handlers hand their transition to a few flusher
//! tasks, which take whatever has queued up meanwhile and run it as one conditional UPDATE
//! over all those ids. Nothing waits for a batch to fill: a lone transition goes out at
//! once, and batches only grow while the flushers are busy.
//!
//! The semantics are the single-row queries': a row still moves only from the expected
//! state, each handler learns whether *its* row moved, and only after the commit. A failed
//! start batch is run again with its token (idempotent: it answers which rows are its own,
//! also when the first run committed and only its answer was lost); a failed finish batch is
//! retried row by row, so one bad row (or a deadlock between two batches) costs no more than
//! before.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use herald_shared::db::effects::{self, SentOutcome, Started};

use super::retry::retry_write;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

/// Flusher tasks per transition: while one waits for its commit, another collects the next
/// batch.
const FLUSHERS: usize = 2;
/// Most rows in one statement.
const MAX_BATCH: usize = 256;
/// Requests waiting for a flusher; a full queue makes handlers wait (backpressure).
const QUEUE: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, sqlx::Error>>;

/// A transition that could not be run.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The flusher stopped (runtime shutdown) before it answered; whether the row moved is
    /// unknown, exactly as when a single-row query's connection drops.
    #[error("the transition flusher stopped before answering")]
    Lost,
}

/// The handle the handlers use; cheap to clone.
#[derive(Clone)]
pub struct Transitions {
    db: PgPool,
    start: mpsc::Sender<(Uuid, Reply<Option<Started>>)>,
    finish: mpsc::Sender<(SentOutcome, Reply<bool>)>,
}

impl Transitions {
    /// Spawns the flushers on the current runtime; they end once every handle is dropped.
    pub fn spawn(db: PgPool) -> Self {
        let (start, start_rx) = mpsc::channel(QUEUE);
        let (finish, finish_rx) = mpsc::channel(QUEUE);
        let start_rx = Arc::new(Mutex::new(start_rx));
        let finish_rx = Arc::new(Mutex::new(finish_rx));
        for _ in 0..FLUSHERS {
            tokio::spawn(flush_loop(start_rx.clone(), db.clone(), flush_starts));
            tokio::spawn(flush_loop(finish_rx.clone(), db.clone(), flush_finishes));
        }
        Self { db, start, finish }
    }

    /// [`effects::start_sending`], batched with other handlers' starts.
    pub async fn start_sending(&self, id: Uuid) -> Result<Option<Started>, TransitionError> {
        let (reply, answer) = oneshot::channel();
        if self.start.send((id, reply)).await.is_err() {
            // No flushers (the runtime is stopping): the single-row query does the same.
            return Ok(effects::start_sending(&self.db, id).await?);
        }
        Ok(answer.await.map_err(|_| TransitionError::Lost)??)
    }

    /// [`effects::finish_sent`], batched with other handlers' finishes.
    pub async fn finish_sent(&self, outcome: SentOutcome) -> Result<bool, TransitionError> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((outcome, _))) = self.finish.send((outcome, reply)).await
        {
            return Ok(effects::finish_sent(&self.db, &outcome).await?);
        }
        Ok(answer.await.map_err(|_| TransitionError::Lost)??)
    }
}

/// Takes every request waiting (up to [`MAX_BATCH`]) and flushes them as one batch, until
/// the channel closes.
async fn flush_loop<R, F, Fut>(requests: Arc<Mutex<mpsc::Receiver<R>>>, db: PgPool, flush: F)
where
    F: Fn(PgPool, Vec<R>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let mut batch = Vec::new();
        {
            // Only the collecting is exclusive; the other flusher's statement runs meanwhile.
            let mut requests = requests.lock().await;
            if requests.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        flush(db.clone(), batch).await;
    }
}

async fn flush_starts(db: PgPool, batch: Vec<(Uuid, Reply<Option<Started>>)>) {
    // A handler that has gone away (its task was dropped) must not have its row moved to
    // `sending` behind its back; with the single-row query it would not have been either.
    let batch: Vec<_> = batch
        .into_iter()
        .filter(|(_, reply)| !reply.is_closed())
        .collect();
    if batch.is_empty() {
        return;
    }
    // Sorted, so concurrent batches lock rows in one order.
    let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let token = Uuid::new_v4();
    // Run again with the same token when the answer is lost: it returns the rows this batch
    // moved (see `start_sending_many`), so none is left in `sending` with nobody sending it.
    let rows = retry_write("start a batch", || {
        effects::start_sending_many(&db, &ids, token)
    })
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(err) => {
            tracing::warn!(error = %err, rows = batch.len(), "batched start failed");
            for (_, reply) in batch {
                let _ = reply.send(Err(sqlx::Error::Protocol(format!(
                    "batched start failed: {err}"
                ))));
            }
            return;
        }
    };
    let mut started: HashMap<Uuid, Started> = rows.into_iter().map(|row| (row.id, row)).collect();
    for (id, reply) in batch {
        // The same id twice in one batch (a duplicate delivery): the row moved once, so only
        // the first request gets it and the other does nothing.
        let _ = reply.send(Ok(started.remove(&id)));
    }
}

async fn flush_finishes(db: PgPool, mut batch: Vec<(SentOutcome, Reply<bool>)>) {
    // Sorted, so concurrent batches lock rows in one order.
    batch.sort_by_key(|(outcome, _)| outcome.id);
    let outcomes: Vec<SentOutcome> = batch.iter().map(|(outcome, _)| outcome.clone()).collect();
    match effects::finish_sent_many(&db, &outcomes).await {
        Ok(ids) => {
            let mut recorded: HashSet<Uuid> = ids.into_iter().collect();
            for (outcome, reply) in batch {
                let _ = reply.send(Ok(recorded.remove(&outcome.id)));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, rows = batch.len(), "batched finish failed; retrying row by row");
            for (outcome, reply) in batch {
                let recorded =
                    retry_write("record a send", || effects::finish_sent(&db, &outcome)).await;
                let _ = reply.send(recorded);
            }
        }
    }
}
