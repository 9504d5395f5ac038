//! Twilio's request signature (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the
//! auth token, over the full public URL followed by every POST parameter's name and value,
//! sorted by name.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The signature Twilio sends for `url` and `params`.
pub fn sign(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut payload = url.to_owned();
    for (name, value) in sorted {
        payload.push_str(name);
        payload.push_str(value);
    }
    // HMAC accepts keys of any length
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(payload.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the right signature, compared in constant time.
pub fn verify(auth_token: &[u8], url: &str, params: &[(String, String)], given: &str) -> bool {
    let Ok(given) = STANDARD.decode(given) else {
        return false;
    };
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token) {
        Ok(mac) => mac,
        Err(_) => return false,
    };
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    !auth_token.is_empty() && mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn matches_twilios_documented_example() {
        // the example from Twilio's "Webhooks security" page
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let signature = sign(b"12345", url, &params());
        assert_eq!(signature, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify(b"12345", url, &params(), &signature));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let signature = sign(b"12345", url, &params());
        let mut changed = params();
        changed[2].1 = "9999".to_owned();
        assert!(!verify(b"12345", url, &changed, &signature));
        assert!(!verify(b"54321", url, &params(), &signature));
        assert!(!verify(
            b"12345",
            "https://evil.example.com/myapp.php?foo=1&bar=2",
            &params(),
            &signature
        ));
        assert!(!verify(b"", url, &params(), &sign(b"", url, &params())));
        assert!(!verify(b"12345", url, &params(), "not base64!"));
    }
}
