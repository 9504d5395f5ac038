//! Which network addresses an account may make Herald connect to. Herald connects, from
//! inside the deployment, to hosts accounts name (an LLM provider's URL, a sender's SMTP
//! server): a name or address inside the deployment (`localhost:6379`, a cloud metadata
//! endpoint) would let an account reach services not meant to be reachable from outside.

use std::net::{IpAddr, SocketAddr};

/// Loopback, private, link-local, shared (CGNAT), benchmarking, unspecified, broadcast,
/// multicast, reserved or documentation ranges; IPv6 unique-local, link-local, multicast, and
/// IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) judged by that address.
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
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The IPv4 address an IPv6 one carries, if it is of a form that reaches it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4
/// (`2002:aabb:ccdd::`).
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = v6.octets();
    let tail = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = v6.segments();
    if segments[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(tail);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if segments[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// The address to connect to for `host`: the first it resolves to, refused (`Ok(Err)`, with
/// the reason) when any of its addresses is internal and `allow_private` is off; an error
/// when it does not resolve. The caller connects to this address, not to the name again.
pub async fn public_address(
    host: &str,
    port: u16,
    allow_private: bool,
) -> std::io::Result<Result<SocketAddr, String>> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
    };
    let Some(first) = addresses.first().copied() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    };
    if !allow_private
        && let Some(internal) = addresses.iter().find(|address| is_internal(address.ip()))
    {
        return Ok(Err(format!(
            "{host} is an internal address ({})",
            internal.ip()
        )));
    }
    Ok(Ok(first))
}

/// What a refused name's connection error says (an HTTP client's error chain carries it).
pub const INTERNAL_REFUSED: &str = "resolves to an internal address";

/// The DNS resolver of an HTTP client calling hosts accounts name (an LLM provider's
/// `base_url`): it resolves with the system's resolver and refuses a name any of whose
/// addresses is internal, at every connection — so a name that resolved to a public address
/// when it was written and resolves inside the deployment now (DNS rebinding) is refused too.
/// `allowed` names (the operator's own, `llm.default_provider`) are not checked. IP literals
/// are not resolved by the client: they are checked where the URL is written.
#[derive(Debug, Clone, Default)]
pub struct PublicOnly {
    pub allowed: Vec<String>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allowed = self
            .allowed
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            // the port is the URL's, set by the client on the addresses answered
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allowed
                && let Some(internal) = addresses.iter().find(|address| is_internal(address.ip()))
            {
                return Err(format!("{host} {INTERNAL_REFUSED} ({})", internal.ip()).into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(text: &str) -> bool {
        is_internal(text.parse().unwrap())
    }

    #[test]
    fn internal_ranges_and_ipv6_forms_of_them() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "100.64.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(internal(address), "{address}");
        }
        for address in ["93.184.216.34", "2606:2800:220:1::", "64:ff9b::5db8:d822"] {
            assert!(!internal(address), "{address}");
        }
    }

    #[tokio::test]
    async fn a_client_with_the_public_only_resolver_refuses_a_name_inside_the_deployment() {
        let server = wiremock::MockServer::start().await;
        let port = server.address().port();
        let refusing = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(PublicOnly::default()))
            .build()
            .unwrap();
        let err = refusing
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let chain = format!("{:?}", anyhow_chain(&err));
        assert!(chain.contains(INTERNAL_REFUSED), "{chain}");
        let allowing = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(PublicOnly {
                allowed: vec!["LOCALHOST".to_owned()],
            }))
            .build()
            .unwrap();
        let answer = allowing
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            404,
            "wiremock answered: the name was allowed"
        );
    }

    fn anyhow_chain(err: &dyn std::error::Error) -> Vec<String> {
        let mut chain = vec![err.to_string()];
        let mut source = err.source();
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        chain
    }

    #[tokio::test]
    async fn a_host_is_pinned_to_a_checked_address() {
        let local = public_address("localhost", 25, false).await.unwrap();
        assert!(local.is_err(), "{local:?}");
        let allowed = public_address("127.0.0.1", 2525, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(allowed, "127.0.0.1:2525".parse().unwrap());
        let public = public_address("93.184.216.34", 25, false).await.unwrap();
        assert!(public.is_ok());
    }
}
