//! Which network addresses an account may make Herald connect to. Herald connects, from
//! inside the deployment, to hosts accounts name (an LLM provider's URL, a sender's SMTP
//! server): a name or address inside the deployment (`localhost:6379`, a cloud metadata
//! endpoint) would let an account reach services not meant to be reachable from outside.

use std::net::IpAddr;

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast or documentation
/// ranges, and IPv6 unique-local, link-local or IPv4-mapped ones of those.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Whether `host` is, or resolves to, an internal address (any of its addresses); an error
/// when it does not resolve.
pub async fn resolves_internal(host: &str, port: u16) -> std::io::Result<bool> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(is_internal(ip));
    }
    let mut found = false;
    for address in tokio::net::lookup_host((host, port)).await? {
        found = true;
        if is_internal(address.ip()) {
            return Ok(true);
        }
    }
    if !found {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_and_private_addresses_are_internal() {
        assert!(resolves_internal("127.0.0.1", 25).await.unwrap());
        assert!(resolves_internal("localhost", 25).await.unwrap());
        assert!(resolves_internal("10.1.2.3", 25).await.unwrap());
        assert!(resolves_internal("::1", 25).await.unwrap());
        assert!(!resolves_internal("93.184.216.34", 25).await.unwrap());
    }
}
