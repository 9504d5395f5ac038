//! Phone numbers, validated against libphonenumber's metadata (the `phonenumber` crate) and
//! kept in E.164 (`+919876543210`), the one form SMS and WhatsApp providers take and the
//! form a group's "phone already here" check compares.

use std::fmt::{self, Write as _};
use std::panic;

use phonenumber::Mode;
use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

/// Fewest digits accepted: Niue's national numbers have four.
const MIN_DIGITS: usize = 4;
/// Most digits accepted: E.164's 15 plus room for an international or trunk prefix.
const MAX_DIGITS: usize = 20;

/// A phone number valid for its region, in E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses `+<country code> <number>`, or a national number (`098765 43210`) with
    /// `country` (ISO 3166 alpha-2, e.g. `IN`) naming its region. Spaces, dots, dashes and
    /// parentheses are ignored; letters (vanity numbers), extensions and numbers that are
    /// not valid for their region are refused.
    pub fn parse(raw: &str, country: Option<&str>) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))
        {
            return Err(
                "may contain only digits, spaces, `+`, `-`, `.` and parentheses".to_owned(),
            );
        }
        let digits = raw.chars().filter(char::is_ascii_digit).count();
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
            return Err(format!(
                "must have {MIN_DIGITS} to {MAX_DIGITS} digits, e.g. +14155550123"
            ));
        }
        let international = raw.starts_with('+');
        let region = country.map(region).transpose()?;
        if !international && region.is_none() {
            return Err(
                "is a national number: start it with + and the country code, or give `country` \
                 (e.g. IN)"
                    .to_owned(),
            );
        }
        // phonenumber has panicked on malformed input before (rust-phonenumber#32, #43); a
        // bad number must be refused, not take the request (or a whole import) down.
        let owned = raw.to_owned();
        let parsed = panic::catch_unwind(move || {
            let number = phonenumber::parse(region, &owned).ok()?;
            let valid = number.extension().is_none() && phonenumber::is_valid(&number);
            Some((number, valid))
        })
        .ok()
        .flatten();
        let Some((number, valid)) = parsed else {
            return Err("is not a phone number".to_owned());
        };
        if !valid {
            return Err(match region {
                Some(id) if !international => {
                    format!("is not a valid phone number in {}", id.as_ref())
                }
                _ => "is not a valid phone number for its country code".to_owned(),
            });
        }
        let mut e164 = String::new();
        write!(e164, "{}", number.format().mode(Mode::E164))
            .map_err(|_| "is not a phone number".to_owned())?;
        Ok(Self(e164))
    }

    /// The number in E.164, e.g. `+14155550123`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a country hint (ISO 3166 alpha-2, any case) and returns it upper-cased.
pub fn check_country(raw: &str) -> Result<String, String> {
    region(raw).map(|id| id.as_ref().to_owned())
}

fn region(raw: &str) -> Result<Id, String> {
    let code = raw.trim().to_ascii_uppercase();
    let refuse = || {
        format!(
            "`{}` is not a two-letter country code like IN, US or GB",
            raw.trim()
        )
    };
    if code.len() != 2 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(refuse());
    }
    let id: Id = code.parse().map_err(|_| refuse())?;
    // The parser looks the region up and unwraps; a code without numbering metadata would
    // panic there.
    if DATABASE.by_id(id.as_ref()).is_none() {
        return Err(refuse());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(raw: &str, country: Option<&str>) -> String {
        PhoneNumber::parse(raw, country)
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[test]
    fn an_indian_national_number_with_country_in_becomes_e164() {
        assert_eq!(e164("098765 43210", Some("IN")), "+919876543210");
        assert_eq!(e164("98765-43210", Some("in")), "+919876543210");
    }

    #[test]
    fn international_numbers_need_no_country() {
        assert_eq!(e164("+1 (201) 555-0123", None), "+12015550123");
        assert_eq!(e164("+44 7400 123456", None), "+447400123456");
        // a hint does not change a number that carries its own country code
        assert_eq!(e164("+1 201 555 0123", Some("IN")), "+12015550123");
    }

    #[test]
    fn a_national_number_without_a_country_is_refused() {
        let err = PhoneNumber::parse("2015550123", None).unwrap_err();
        assert!(err.contains("country"), "{err}");
    }

    #[test]
    fn numbers_invalid_for_their_region_are_refused() {
        assert!(PhoneNumber::parse("+1 123 456 7890", None).is_err());
        assert!(PhoneNumber::parse("12345", Some("IN")).is_err());
        assert!(PhoneNumber::parse("+999 1234 5678", None).is_err());
    }

    #[test]
    fn letters_and_extensions_are_refused() {
        assert!(PhoneNumber::parse("1-800-FLOWERS", Some("US")).is_err());
        assert!(PhoneNumber::parse("+1 201 555 0123 x12", None).is_err());
        assert!(PhoneNumber::parse("call me", None).is_err());
        assert!(PhoneNumber::parse("", None).is_err());
    }

    #[test]
    fn bad_country_hints_are_refused() {
        assert!(PhoneNumber::parse("09876543210", Some("India")).is_err());
        assert!(PhoneNumber::parse("09876543210", Some("ZZ")).is_err());
        assert_eq!(check_country(" gb ").unwrap(), "GB");
    }

    #[test]
    fn odd_inputs_never_panic() {
        for raw in [
            "+",
            "+1",
            "++++",
            "  2 22",
            "+0000",
            "(((())))",
            "+99",
            "00 44 7400 123456",
        ] {
            let _ = PhoneNumber::parse(raw, None);
            let _ = PhoneNumber::parse(raw, Some("US"));
        }
    }
}
