//! Domain values with parse constructors, so invalid values cannot travel further.

use std::fmt;

/// An e-mail address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Accepts `local@domain.tld` without spaces, up to 254 characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if email.len() > 254 {
            return Err("must be at most 254 characters".to_owned());
        }
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.chars().any(|c| {
                        c.is_whitespace() || c.is_control() || c == ',' || c == '<' || c == '>'
                    })
            }
            None => false,
        };
        if !valid || email.parse::<lettre::Address>().is_err() {
            return Err("must be an e-mail address like name@example.com".to_owned());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 8 to 256 characters.
pub fn check_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < 8 {
        return Err("must be at least 8 characters".to_owned());
    }
    if length > 256 {
        return Err("must be at most 256 characters".to_owned());
    }
    Ok(())
}

/// A person's display name: 1 to 100 characters once trimmed.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.contains('\0') {
        // PostgreSQL text cannot hold it (a CSV import reaches here without the JSON guard)
        return Err("must not contain the NUL character".to_owned());
    }
    match name.chars().count() {
        0 => Err("must not be empty".to_owned()),
        101.. => Err("must be at most 100 characters".to_owned()),
        _ => Ok(name.to_owned()),
    }
}

/// One line of text of 1 to `max` characters once trimmed, without control characters (a
/// name that ends up in a mail header or a log line must not carry a line break).
pub fn parse_line(raw: &str, max: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().any(char::is_control) {
        return Err("must be one line without control characters".to_owned());
    }
    match text.chars().count() {
        0 => Err("must not be empty".to_owned()),
        n if n > max => Err(format!("must be at most {max} characters")),
        _ => Ok(text.to_owned()),
    }
}

/// A whole number within `range` (which lies within `i32`), as stored.
pub fn int_in(value: i64, range: std::ops::RangeInclusive<i64>) -> Result<i32, String> {
    if !range.contains(&value) {
        return Err(format!("must be from {} to {}", range.start(), range.end()));
    }
    i32::try_from(value).map_err(|_| "is out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_normalised_and_checked() {
        assert_eq!(
            EmailAddress::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_and_names_have_bounds() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(parse_name("   ").is_err());
        assert_eq!(parse_name(" Ada ").unwrap(), "Ada");
    }
}
