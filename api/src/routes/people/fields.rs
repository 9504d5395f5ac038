//! The checks every way of writing a person shares — a JSON body or a CSV row: an e-mail
//! (trimmed, lower-cased), first and last name, company and title (trimmed, up to 200
//! characters, empty when not given), an optional IANA region time zone, and attributes: at
//! most 50 names of 1–100 characters, each to a text of at most 1,000.

use herald_shared::db::people::{Attributes, NewPerson};
use herald_shared::domain::EmailAddress;
use herald_shared::time_rules::parse_region_zone;

use crate::error::FieldError;

/// Longest first name, last name, company or title, once trimmed.
pub const MAX_TEXT_CHARS: usize = 200;
/// Most attributes one person may have.
pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_ATTRIBUTE_NAME_CHARS: usize = 100;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 1_000;

/// A person's fields as text, however they arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPerson<'a> {
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub company: &'a str,
    pub title: &'a str,
    pub timezone: Option<&'a str>,
}

/// Checks a person, returning every field at fault (`email`, `first_name`, …); `attributes`
/// are checked by the caller (their names come from a JSON object or a CSV header).
pub fn check_person(
    raw: RawPerson<'_>,
    attributes: Attributes,
) -> Result<NewPerson, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut check = |field: &str, result: Result<String, String>| {
        result
            .map_err(|message| errors.push(FieldError::new(field, message)))
            .ok()
    };
    let email = check(
        "email",
        EmailAddress::parse(raw.email).map(|e| e.to_string()),
    );
    let first_name = check("first_name", check_text(raw.first_name));
    let last_name = check("last_name", check_text(raw.last_name));
    let company = check("company", check_text(raw.company));
    let title = check("title", check_text(raw.title));
    let timezone = match raw.timezone {
        None => Some(None),
        Some(zone) => check("timezone", parse_region_zone(zone)).map(Some),
    };
    match (email, first_name, last_name, company, title, timezone) {
        (Some(email), Some(first_name), Some(last_name), Some(company), Some(title), Some(tz)) => {
            Ok(NewPerson {
                email,
                first_name,
                last_name,
                company,
                title,
                timezone: tz,
                attributes,
            })
        }
        _ => Err(errors),
    }
}

/// A name, company or title: trimmed, at most `MAX_TEXT_CHARS`, possibly empty.
pub fn check_text(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    refuse_nul(text)?;
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("must be at most {MAX_TEXT_CHARS} characters"));
    }
    Ok(text.to_owned())
}

/// An attribute's name: 1 to `MAX_ATTRIBUTE_NAME_CHARS` characters, as given.
pub fn check_attribute_name(name: &str) -> Result<(), String> {
    refuse_nul(name)?;
    match name.chars().count() {
        0 => Err("attribute names must not be empty".to_owned()),
        n if n > MAX_ATTRIBUTE_NAME_CHARS => Err(format!(
            "attribute names must be at most {MAX_ATTRIBUTE_NAME_CHARS} characters"
        )),
        _ => Ok(()),
    }
}

/// An attribute's value: at most `MAX_ATTRIBUTE_VALUE_CHARS` characters.
pub fn check_attribute_value(value: &str) -> Result<(), String> {
    refuse_nul(value)?;
    if value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
        return Err(format!(
            "must be at most {MAX_ATTRIBUTE_VALUE_CHARS} characters"
        ));
    }
    Ok(())
}

/// Checks a JSON `attributes` object: its size on `attributes`, a bad name on `attributes`
/// (naming it), a bad value on `attributes.<name>`.
pub fn check_attributes(attributes: &Attributes, errors: &mut Vec<FieldError>) {
    if attributes.len() > MAX_ATTRIBUTES {
        errors.push(FieldError::new(
            "attributes",
            format!("must have at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    for (name, value) in attributes {
        if let Err(message) = check_attribute_name(name) {
            errors.push(FieldError::new(
                "attributes",
                format!("`{name}`: {message}"),
            ));
        } else if let Err(message) = check_attribute_value(value) {
            errors.push(FieldError::new(format!("attributes.{name}"), message));
        }
    }
}

/// PostgreSQL text cannot hold NUL; a CSV cell reaches here without the JSON body's guard.
fn refuse_nul(text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err("must not contain the NUL character".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_at_fault_is_reported_and_a_good_person_is_normalised() {
        let raw = RawPerson {
            email: "ada@",
            first_name: &"x".repeat(201),
            timezone: Some("EST"),
            ..RawPerson::default()
        };
        let fields: Vec<String> = check_person(raw, Attributes::new())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["email", "first_name", "timezone"]);
        let raw = RawPerson {
            email: " Ada@Example.COM ",
            company: " Analytical Engines ",
            ..RawPerson::default()
        };
        let person = check_person(raw, Attributes::new()).unwrap();
        assert_eq!(person.email, "ada@example.com");
        assert_eq!(person.company, "Analytical Engines");
        assert_eq!(person.timezone, None);
    }

    #[test]
    fn attributes_are_bounded_in_count_name_and_value() {
        let mut errors = Vec::new();
        let many: Attributes = (0..51).map(|n| (format!("k{n}"), String::new())).collect();
        check_attributes(&many, &mut errors);
        let bad: Attributes = [
            (String::new(), "v".to_owned()),
            ("long".to_owned(), "v".repeat(1_001)),
        ]
        .into();
        check_attributes(&bad, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["attributes", "attributes", "attributes.long"]);
    }
}
