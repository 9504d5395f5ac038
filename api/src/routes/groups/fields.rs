//! A student as a client sends it (`StudentIn`, `StudentUpdate`) and gets it back
//! (`StudentOut`), and the checks every way of adding one shares — one JSON object, many, or
//! a CSV row: a name, a phone normalised to E.164 (a national number needs `country`), a
//! channel (`sms` or `whatsapp`) and an IANA region time zone (`time_rules::parse_region_zone`).

use chrono::{DateTime, Utc};
use herald_shared::db::groups::{NewStudent, StudentRow};
use herald_shared::domain::parse_name;
use herald_shared::phone::{self, PhoneNumber};
use herald_shared::time_rules::parse_region_zone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{FieldError, FieldErrors};

/// A new student.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentIn {
    /// 1–100 characters.
    pub name: String,
    /// `+<country code> <number>`, or a national number together with `country`. Stored in
    /// E.164.
    #[schema(example = "+919876543210")]
    pub phone: String,
    /// `sms` or `whatsapp` (any case).
    #[schema(example = "whatsapp")]
    pub channel: String,
    /// IANA zone name of the student's home, e.g. `Asia/Kolkata`. Abbreviations (`EST`) and
    /// fixed offsets (`Etc/GMT+5`) are refused: they ignore daylight-saving time.
    #[schema(example = "Asia/Kolkata")]
    pub timezone: String,
    /// Whether course messages go to the student (default `true`).
    #[serde(default)]
    pub subscribed: Option<bool>,
    /// ISO 3166 alpha-2 region (`IN`, `US`, `GB`) to read a national `phone` in; not stored.
    #[serde(default)]
    #[schema(example = "IN")]
    pub country: Option<String>,
}

/// A student's new fields: all of them are replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentUpdate {
    pub name: String,
    pub phone: String,
    pub channel: String,
    pub timezone: String,
    pub subscribed: bool,
    /// ISO 3166 alpha-2 region to read a national `phone` in; not stored.
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StudentOut {
    pub id: Uuid,
    pub group_id: Uuid,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub channel: String,
    pub timezone: String,
    pub subscribed: bool,
    /// Why the student is unsubscribed: `api` (the account unsubscribed them) or
    /// `opt_out_keyword` (they sent STOP; START subscribes them again). Null when subscribed.
    #[schema(example = "opt_out_keyword")]
    pub unsubscribe_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StudentRow> for StudentOut {
    fn from(row: StudentRow) -> Self {
        Self {
            id: row.id,
            group_id: row.group_id,
            name: row.name,
            phone: row.phone,
            channel: row.channel,
            timezone: row.timezone,
            subscribed: row.subscribed,
            unsubscribe_reason: row.unsubscribe_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A student's fields as text, however they arrived.
#[derive(Debug, Clone, Copy)]
pub struct RawStudent<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub channel: &'a str,
    pub timezone: &'a str,
    /// Empty counts as absent (a blank CSV cell).
    pub country: Option<&'a str>,
    pub subscribed: bool,
}

impl<'a> From<&'a StudentIn> for RawStudent<'a> {
    fn from(input: &'a StudentIn) -> Self {
        Self {
            name: &input.name,
            phone: &input.phone,
            channel: &input.channel,
            timezone: &input.timezone,
            country: input.country.as_deref(),
            subscribed: input.subscribed.unwrap_or(true),
        }
    }
}

impl<'a> From<&'a StudentUpdate> for RawStudent<'a> {
    fn from(input: &'a StudentUpdate) -> Self {
        Self {
            name: &input.name,
            phone: &input.phone,
            channel: &input.channel,
            timezone: &input.timezone,
            country: input.country.as_deref(),
            subscribed: input.subscribed,
        }
    }
}

/// Checks a student, returning every field at fault (`name`, `phone`, `channel`,
/// `timezone`, `country`).
pub fn check_student(raw: RawStudent<'_>) -> Result<NewStudent, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = check(&mut errors, "name", parse_name(raw.name));
    let country = raw.country.map(str::trim).filter(|c| !c.is_empty());
    // A bad country is reported on its own field; the phone is only read with a good one.
    let country = match country.map(phone::check_country) {
        None => Some(None),
        Some(result) => check(&mut errors, "country", result).map(Some),
    };
    let phone = country.and_then(|country| {
        let parsed = PhoneNumber::parse(raw.phone, country.as_deref());
        check(&mut errors, "phone", parsed)
    });
    let channel = check(&mut errors, "channel", parse_channel(raw.channel));
    let timezone = check(&mut errors, "timezone", parse_region_zone(raw.timezone));
    match (name, phone, channel, timezone) {
        (Some(name), Some(phone), Some(channel), Some(timezone)) => Ok(NewStudent {
            name,
            phone: phone.as_str().to_owned(),
            channel,
            timezone,
            subscribed: raw.subscribed,
        }),
        _ => Err(errors),
    }
}

fn check<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

/// `check_student`, with field names prefixed by `path` (`students[3].`) into `errors`.
pub fn check_into(raw: RawStudent<'_>, path: &str, errors: &mut FieldErrors) -> Option<NewStudent> {
    check_student(raw)
        .map_err(|found| {
            for error in found {
                errors.add(&format!("{path}{}", error.field), error.message);
            }
        })
        .ok()
}

/// `sms` or `whatsapp`, in any case.
pub fn parse_channel(raw: &str) -> Result<&'static str, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "sms" => Ok("sms"),
        "whatsapp" => Ok("whatsapp"),
        _ => Err("must be `sms` or `whatsapp`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_at_fault_is_reported() {
        let raw = RawStudent {
            name: " ",
            phone: "12",
            channel: "pigeon",
            timezone: "EST",
            country: None,
            subscribed: true,
        };
        let fields: Vec<String> = check_student(raw)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "phone", "channel", "timezone"]);
    }
}
