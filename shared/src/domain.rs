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
