//! The server's checks, stated in the document: limits, patterns and enums on request fields
//! and parameters, so a client generator or a fuzzer knows what the server will refuse.
//!
//! The DTOs of courses, schedules, jobs and cron carry their lengths, item counts, ranges and
//! formats in `#[schema(...)]` attributes beside the field. This module holds the rest:
//! - patterns and enums, which derive attributes cannot take from a constant, and which
//!   here come from the server's own lists (`EffectState::ALL`, …);
//! - parameters shared by many operations (`limit`, `cursor`, `Idempotency-Key`, …), stated
//!   once by name;
//! - fields of DTOs whose modules do not state them yet ([`fields`]); each entry belongs beside
//!   its field, and moves there when that module is next changed.
//!
//! Every rule states only what the server refuses: a value the schema forbids is answered 4xx
//! (schemathesis's `negative_data_rejection` holds the server to that), and a value it allows
//! passes the field's own check. Most text fields are trimmed of surrounding white space
//! before their length is checked, so their limit cannot be a `maxLength` (a padded value
//! longer than the limit is accepted); [`trimmed`] states it as a pattern instead.
//! `every_rule_finds_its_target` fails when a rule's field or parameter is renamed.

use herald_shared::courses::{QuestionType, WHATSAPP_MAX_CHARS};
use herald_shared::db::suppressions::SuppressionReason;
use herald_shared::effects::{EffectKind, EffectState};
use serde_json::{Value, json};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{Object, OpenApi, RefOr, Schema};

use crate::routes::people::fields as people;

/// The white space `str::trim` removes (Unicode `White_Space`), as a regex class body.
const SPACE: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A text the server trims and then requires to have `min` (0 or 1) to `max` (at least 2)
/// characters; without `max`, only that something is left.
pub fn trimmed(min: usize, max: Option<usize>) -> Value {
    let (space, kept) = (format!("[{SPACE}]"), format!("[^{SPACE}]"));
    let pattern = match max {
        // some character that trimming keeps
        None => kept,
        Some(max) => {
            let core = format!("{kept}(?:[\\s\\S]{{0,{}}}{kept})?", max.saturating_sub(2));
            let core = if min == 0 {
                format!("(?:{core})?")
            } else {
                core
            };
            format!("^{space}*{core}{space}*$")
        }
    };
    if min == 0 {
        json!({ "pattern": pattern })
    } else {
        json!({"minLength": min, "pattern": pattern})
    }
}

/// A time zone as `time_rules::parse_zone` takes it: `UTC` or an `Area/Location` name.
pub const ZONE: &str = "^UTC$|/";

/// A schedule's zone (`schedules::parse_schedule_zone`): a time zone or `recipient`.
pub const SCHEDULE_ZONE: &str = "^UTC$|^recipient$|/";

/// Longest suppression `source` (`routes::suppressions`).
const SUPPRESSION_SOURCE: usize = crate::routes::suppressions::MAX_SOURCE_CHARS;

const FORM: &str = "application/x-www-form-urlencoded";

/// `Idempotency-Key`: 1–255 visible ASCII characters (`extract::IdempotencyKey`).
pub const IDEMPOTENCY_KEY: &str = "^[!-~]{1,255}$";

/// Page sizes of every list (`pagination::PageRequest`).
const MAX_PAGE: u64 = 200;

/// `(schema, property, constraints merged into the property's schema)`.
fn fields() -> Vec<(&'static str, &'static str, Value)> {
    let not_blank = || trimmed(1, None);
    let uuid = json!({"format": "uuid"});
    let message = WHATSAPP_MAX_CHARS;
    let question_types = [QuestionType::Open, QuestionType::Choice].map(QuestionType::as_str);
    let reasons = SuppressionReason::ALL.map(SuppressionReason::as_str);
    let mut option = trimmed(1, None);
    option["type"] = json!("string");
    vec![
        // courses, schedules, cron: counts, ranges and formats are in the DTOs
        ("CourseIn", "name", trimmed(1, Some(200))),
        ("CourseIn", "author", trimmed(1, Some(200))),
        ("CourseIn", "description", trimmed(0, Some(5000))),
        ("CourseUpdate", "name", trimmed(1, Some(200))),
        ("CourseUpdate", "author", trimmed(1, Some(200))),
        ("CourseUpdate", "description", trimmed(0, Some(5000))),
        ("DayIn", "text", trimmed(1, Some(message))),
        ("DayUpdate", "text", trimmed(1, Some(message))),
        // with its lettered options; the question alone is the part a pattern can hold
        ("QuestionIn", "question", trimmed(1, Some(message))),
        ("QuestionIn", "type", json!({ "enum": question_types })),
        // options must differ (even in case and spacing): identical ones certainly do not
        (
            "QuestionIn",
            "options",
            json!({ "items": option, "uniqueItems": true }),
        ),
        ("ScheduleIn", "name", trimmed(1, Some(200))),
        ("ScheduleIn", "cron", not_blank()),
        ("ScheduleIn", "timezone", json!({"pattern": SCHEDULE_ZONE})),
        ("ScheduleUpdate", "name", trimmed(1, Some(200))),
        ("ScheduleUpdate", "cron", not_blank()),
        (
            "ScheduleUpdate",
            "timezone",
            json!({"pattern": SCHEDULE_ZONE}),
        ),
        ("ActionIn", "type", json!({"enum": ["group_message"]})),
        ("ActionIn", "text", trimmed(1, Some(message))),
        ("CronPreviewIn", "expression", not_blank()),
        ("CronPreviewIn", "timezone", json!({"pattern": ZONE})),
        // auth (routes/auth.rs, herald_shared::domain)
        ("SignupIn", "email", not_blank()),
        (
            "SignupIn",
            "password",
            json!({"minLength": 8, "maxLength": 256}),
        ),
        ("SignupIn", "name", trimmed(1, Some(100))),
        ("LoginIn", "email", not_blank()),
        ("ForgotPasswordIn", "email", not_blank()),
        (
            "ResetPasswordIn",
            "password",
            json!({"minLength": 8, "maxLength": 256}),
        ),
        // groups (routes/groups/*)
        ("GroupIn", "name", trimmed(1, Some(200))),
        ("StudentIn", "name", trimmed(1, Some(100))),
        ("StudentIn", "phone", not_blank()),
        ("StudentIn", "channel", channel()),
        ("StudentIn", "timezone", not_blank()),
        ("StudentUpdate", "name", trimmed(1, Some(100))),
        ("StudentUpdate", "phone", not_blank()),
        ("StudentUpdate", "channel", channel()),
        ("StudentUpdate", "timezone", not_blank()),
        (
            "StudentBatchIn",
            "students",
            // phones must differ, so two identical students certainly do not pass
            json!({"minItems": 1, "maxItems": 1000, "uniqueItems": true}),
        ),
        // people (routes/people/fields.rs)
        ("PersonIn", "email", not_blank()),
        ("PersonIn", "first_name", person_text()),
        ("PersonIn", "last_name", person_text()),
        ("PersonIn", "company", person_text()),
        ("PersonIn", "title", person_text()),
        ("PersonIn", "timezone", json!({"pattern": ZONE})),
        ("PersonIn", "attributes", person_attributes()),
        // suppressions (routes/suppressions.rs)
        ("SuppressionIn", "email", not_blank()),
        ("SuppressionIn", "reason", json!({"enum": reasons})),
        (
            "SuppressionIn",
            "source",
            trimmed(0, Some(SUPPRESSION_SOURCE)),
        ),
        // deliveries (routes/deliveries/plan.rs)
        ("DeliveryIn", "group_id", uuid.clone()),
        ("DeliveryIn", "course_id", uuid),
        ("DeliveryIn", "timezone", json!({"pattern": ZONE})),
    ]
}

/// `sms` or `whatsapp` in any case, with surrounding white space (`fields::parse_channel`).
fn channel() -> Value {
    let space = format!("[{SPACE}]*");
    json!({"pattern": format!("^{space}(?:[Ss][Mm][Ss]|[Ww][Hh][Aa][Tt][Ss][Aa][Pp][Pp]){space}$")})
}

/// A person's name, company or title (`people::fields::check_text`).
fn person_text() -> Value {
    trimmed(0, Some(people::MAX_TEXT_CHARS))
}

/// A person's attributes (`people::fields::check_attributes`): names and values as given.
fn person_attributes() -> Value {
    json!({
        "maxProperties": people::MAX_ATTRIBUTES,
        "propertyNames": {
            "type": "string", "minLength": 1, "maxLength": people::MAX_ATTRIBUTE_NAME_CHARS
        },
        "additionalProperties": {"type": "string", "maxLength": people::MAX_ATTRIBUTE_VALUE_CHARS},
    })
}

/// `(where, name, the parameter's schema)`, for every operation with such a parameter.
fn parameters() -> Vec<(ParameterIn, &'static str, Value)> {
    vec![
        (
            ParameterIn::Query,
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        ),
        (
            ParameterIn::Query,
            "cursor",
            json!({"type": "string", "minLength": 1}),
        ),
        (
            ParameterIn::Query,
            "state",
            json!({"type": "string", "enum": EffectState::ALL.map(EffectState::as_str)}),
        ),
        (
            ParameterIn::Query,
            "kind",
            json!({"type": "string", "enum": EffectKind::ALL.map(EffectKind::as_str)}),
        ),
        (
            ParameterIn::Query,
            "student_id",
            json!({"type": "string", "format": "uuid"}),
        ),
        (ParameterIn::Query, "subscribed", json!({"type": "boolean"})),
        (
            ParameterIn::Query,
            "reason",
            json!({"type": "string", "enum": SuppressionReason::ALL.map(SuppressionReason::as_str)}),
        ),
        (
            ParameterIn::Query,
            "q",
            json!({"type": "string", "maxLength": crate::routes::people::MAX_SEARCH_CHARS}),
        ),
        (
            ParameterIn::Path,
            "day",
            json!({"type": "integer", "format": "int32", "minimum": 1}),
        ),
        (
            ParameterIn::Header,
            "Idempotency-Key",
            json!({"type": "string", "pattern": IDEMPOTENCY_KEY}),
        ),
    ]
}

/// A form body (Twilio's webhooks) is named fields with text values; the handlers read the
/// ones they need and ignore the rest.
fn form_fields() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// Applies the rules; returns those that found nothing to apply to.
pub fn apply(api: &mut OpenApi) -> Vec<String> {
    for item in api.paths.paths.values_mut() {
        for operation in super::operations_mut(item) {
            if let Some(RefOr::T(body)) = &mut operation.request_body
                && let Some(RefOr::T(form)) = body.content.get_mut(FORM)
                && let Ok(schema) = serde_json::from_value(form_fields())
            {
                form.schema = Some(schema);
            }
        }
    }
    let mut unused = Vec::new();
    let mut schemas = api.components.as_mut().map(|c| &mut c.schemas);
    for (schema, property, rule) in fields() {
        let target = schemas
            .as_mut()
            .and_then(|schemas| schemas.get_mut(schema))
            .and_then(|schema| match schema {
                RefOr::T(Schema::Object(object)) => object.properties.get_mut(property),
                _ => None,
            });
        match target {
            Some(target) => merge_into(target, &rule),
            None => unused.push(format!("{schema}.{property}")),
        }
    }
    for (location, name, rule) in parameters() {
        let mut found = false;
        for item in api.paths.paths.values_mut() {
            for operation in super::operations_mut(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter
                        && parameter.parameter_in == location
                        && parameter.name == name
                    {
                        set_schema(parameter, &rule);
                        found = true;
                    }
                }
            }
        }
        if !found {
            unused.push(format!("parameter {name}"));
        }
    }
    unused
}

fn merge_into(target: &mut RefOr<Schema>, rule: &Value) {
    let Ok(mut value) = serde_json::to_value(&*target) else {
        return;
    };
    if let (Value::Object(fields), Value::Object(rule)) = (&mut value, rule) {
        for (key, item) in rule {
            fields.insert(key.clone(), item.clone());
        }
    }
    if let Ok(merged) = serde_json::from_value(value) {
        *target = merged;
    }
}

fn set_schema(parameter: &mut Parameter, rule: &Value) {
    let mut schema = parameter
        .schema
        .clone()
        .unwrap_or_else(|| RefOr::T(Schema::Object(Object::new())));
    merge_into(&mut schema, rule);
    parameter.schema = Some(schema);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_finds_its_target() {
        // `finish` applies the rules; apply them again to see which found nothing
        let mut api = crate::openapi();
        assert_eq!(super::apply(&mut api), Vec::<String>::new());
    }
}
