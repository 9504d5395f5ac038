//! The check of a provider's `base_url`: an absolute `http(s)` URL without credentials, query
//! or fragment, and — unless `llm.allow_private_base_urls` — not naming an internal address.
//!
//! Herald calls this URL from inside the deployment with the account's key, so an account
//! that could name `http://169.254.169.254/` or `http://localhost:6379/` would make Herald
//! reach services that are not meant to be reachable from outside. This check refuses such
//! addresses written as IP literals or `localhost`; a public host name that resolves to an
//! internal address is for the caller to refuse at connection time (the generation job).

use std::net::IpAddr;

use herald_shared::net::is_internal;
use url::{Host, Url};

/// The URL, normalised (no trailing `/`), or why it is refused.
pub fn check(raw: &str, allow_private: bool) -> Result<String, String> {
    let url = Url::parse(raw.trim())
        .map_err(|_| "must be an absolute URL like https://api.openai.com/v1".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; give the key as api_key".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    let internal = match url.host() {
        None => return Err("must name a host".to_owned()),
        Some(Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
    };
    if internal && !allow_private {
        return Err("must not name a loopback, private or link-local address".to_owned());
    }
    if url.as_str().len() > 2_000 {
        return Err("must be at most 2,000 characters".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn public_urls_pass_and_internal_ones_only_when_allowed() {
        assert_eq!(
            check("https://api.openai.com/v1/", false).as_deref(),
            Ok("https://api.openai.com/v1")
        );
        for internal in [
            "http://127.0.0.1:8080/v1",
            "http://localhost/v1",
            "http://api.localhost/v1",
            "http://10.1.2.3/v1",
            "http://172.16.0.1/v1",
            "http://192.168.1.1/v1",
            "http://169.254.169.254/latest",
            "http://100.64.0.1/v1",
            "http://0.0.0.0/v1",
            "http://[::1]/v1",
            "http://[fd00::1]/v1",
            "http://[fe80::1]/v1",
            "http://[::ffff:127.0.0.1]/v1",
        ] {
            assert!(check(internal, false).is_err(), "{internal} passed");
            assert!(
                check(internal, true).is_ok(),
                "{internal} refused when allowed"
            );
        }
        for bad in [
            "api.openai.com/v1",
            "ftp://example.com/v1",
            "https://user:pass@example.com/v1",
            "https://example.com/v1?key=1",
            "https://example.com/v1#x",
            "",
        ] {
            assert!(check(bad, true).is_err(), "{bad} passed");
        }
    }
}
