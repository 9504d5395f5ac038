//! Keyset pagination shared by every list: `limit` (1–200, default 50) and an opaque `cursor`
//! naming the last row of the previous page (its creation time and id), so pages stay stable
//! while rows are added. A cursor that did not come from a page (garbage, or an instant
//! PostgreSQL cannot hold) is a 422 on `cursor`, never a failed query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use herald_shared::time_rules;
use uuid::Uuid;

use crate::error::FieldErrors;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

impl PageRequest {
    /// Parses the `limit` and `cursor` query parameters, recording field errors.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, errors: &mut FieldErrors) -> Self {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => errors
                .check(
                    "limit",
                    raw.parse::<i64>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("must be a number from 1 to {MAX_LIMIT}")),
                )
                .unwrap_or(DEFAULT_LIMIT),
        };
        let after = cursor.and_then(|raw| errors.check("cursor", decode_cursor(raw)));
        Self { limit, after }
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the fetched rows to the page and computes the next cursor.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
    ) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if rows.len() <= limit {
            return (rows, None);
        }
        rows.truncate(limit);
        let next = rows.last().map(|row| {
            let (at, id) = key(row);
            encode_cursor(at, id)
        });
        (rows, next)
    }
}

fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", created_at.timestamp_micros()))
}

fn decode_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), String> {
    let invalid = || "is not a cursor from a previous page".to_owned();
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
    // An instant chrono reads but PostgreSQL cannot hold (before 4714 BC) would fail the
    // list's query; no page ever ends there, so it is as foreign as any other garbage.
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|at| time_rules::fits_postgres(*at))
        .ok_or_else(invalid)?;
    Ok((at, id.parse().map_err(|_| invalid())?))
}

/// The query of a keyset-paged list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
