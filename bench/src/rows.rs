//! Which effect rows a run watches, and what they recorded. The figures a benchmark reports
//! come from the rows' own timestamps (`next_attempt_at`, `sending_at`, `finished_at`), not
//! from the benchmark's clock, so they do not depend on how often it looks.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgConnection, PgPool, Postgres};

/// The rows of one run.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// Every effect in the database: a drain benchmark plans nothing else. Called `rows`
    /// in the sampler's messages.
    Effects,
    /// The message rows of one delivery, by id. Called `messages` in the sampler's messages.
    Delivery(&'a str),
}

/// The rows as they recorded their work, once every one of them is final.
#[derive(Debug)]
pub struct Recorded {
    /// When the first row started sending.
    pub first: DateTime<Utc>,
    /// When the last row finished.
    pub last: DateTime<Utc>,
    /// Lateness (`sending_at − next_attempt_at`, how long a due row waited to be picked up)
    /// percentiles and maximum, in ms.
    pub late_p50_ms: Option<f64>,
    pub late_p99_ms: Option<f64>,
    pub late_max_ms: Option<f64>,
    pub max_attempts: Option<i32>,
    /// Rows that needed more than one attempt.
    pub retried: i64,
    /// Rows whose `next_attempt_at` moved off the planned instant (deferred or retried).
    pub moved: i64,
    /// Distinct provider ids (Twilio SIDs) recorded.
    pub provider_ids: i64,
    /// Rows per state, by state name.
    pub states: Vec<(String, i64)>,
}

/// [`Recorded`] as one query returns it: no first or last when no row ever started.
#[derive(sqlx::FromRow)]
struct Totals {
    first_sending: Option<DateTime<Utc>>,
    last_finished: Option<DateTime<Utc>>,
    late_p50_ms: Option<f64>,
    late_p99_ms: Option<f64>,
    late_max_ms: Option<f64>,
    max_attempts: Option<i32>,
    retried: i64,
    moved: i64,
    provider_ids: i64,
}

impl<'a> Rows<'a> {
    /// `from … where …` picking the rows, with their effects as `e` (`$1` is the delivery id).
    fn source(self) -> &'static str {
        match self {
            Rows::Effects => "from effects e where true",
            Rows::Delivery(_) => {
                "from delivery_messages m join effects e on e.id = m.effect_id
                 where m.delivery_id = $1::uuid"
            }
        }
    }

    /// `sql` (which uses [`source`](Self::source)) with the delivery id bound when it has one.
    fn query<'q, O>(self, sql: &'q str) -> QueryAs<'q, Postgres, O, PgArguments>
    where
        'a: 'q,
        O: for<'r> FromRow<'r, PgRow>,
    {
        let query = sqlx::query_as(sql);
        match self {
            Rows::Effects => query,
            Rows::Delivery(id) => query.bind(id),
        }
    }

    /// How the sampler's messages call the rows, say when a worker died and what failed
    /// on timeout.
    pub(crate) fn wording(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Rows::Effects => ("rows", "during the drain", "not drained"),
            Rows::Delivery(_) => ("messages", "while sending", "not all sent"),
        }
    }

    /// How many rows are not final yet.
    pub async fn unfinished(self, conn: &mut PgConnection) -> anyhow::Result<i64> {
        let sql = format!(
            "select count(*) {} and e.state in ('planned', 'queued', 'sending', 'retrying')",
            self.source()
        );
        let (left,): (i64,) = self.query(&sql).fetch_one(conn).await?;
        Ok(left)
    }

    /// What the rows recorded; `None` when no row was ever started or finished (then the
    /// workers' logs tell why).
    pub async fn recorded(self, pool: &PgPool) -> anyhow::Result<Option<Recorded>> {
        let sql = format!(
            "select min(sending_at) as first_sending,
                    max(finished_at) as last_finished,
                    percentile_cont(0.5) within group (order by late_ms) as late_p50_ms,
                    percentile_cont(0.99) within group (order by late_ms) as late_p99_ms,
                    max(late_ms) as late_max_ms,
                    max(attempts) as max_attempts,
                    count(*) filter (where attempts > 1) as retried,
                    count(*) filter (where next_attempt_at <> due_at) as moved,
                    count(distinct provider_id) as provider_ids
             from (select e.*,
                          (extract(epoch from e.sending_at - e.next_attempt_at) * 1000)::float8
                              as late_ms
                   {}) e",
            self.source()
        );
        let totals: Totals = self.query(&sql).fetch_one(pool).await?;
        let sql = format!(
            "select e.state, count(*) {} group by e.state order by e.state",
            self.source()
        );
        let states = self.query(&sql).fetch_all(pool).await?;
        let (Some(first), Some(last)) = (totals.first_sending, totals.last_finished) else {
            return Ok(None);
        };
        Ok(Some(Recorded {
            first,
            last,
            late_p50_ms: totals.late_p50_ms,
            late_p99_ms: totals.late_p99_ms,
            late_max_ms: totals.late_max_ms,
            max_attempts: totals.max_attempts,
            retried: totals.retried,
            moved: totals.moved,
            provider_ids: totals.provider_ids,
            states,
        }))
    }
}
