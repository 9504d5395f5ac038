//! Who the client is, for per-IP limits. The TCP peer, unless it is one of
//! `api.trusted_proxies`: then the rightmost address in `X-Forwarded-For` that is not a
//! trusted proxy (everything left of it was written by the client and proves nothing). Limits
//! key IPv6 clients by their /64, the block one subscriber gets, so hopping between the
//! 2^64 addresses of one's own network does not buy more attempts.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The client's address given the peer, the `X-Forwarded-For` header values in order, and
/// the trusted proxies.
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        // An unreadable hop was not written by a proxy we trust (they write addresses), so
        // the last trusted hop is the best we know.
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

/// `1.2.3.4`, `2001:db8::1`, and the `1.2.3.4:5678` / `[2001:db8::1]:443` some proxies write.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The key of a client in per-IP limits: an IPv4 address as is, an IPv6 address by its /64.
pub fn limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let network = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(
            resolve(ip("203.0.113.9"), ["198.51.100.1"], &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("203.0.113.9"), ["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "::1/128"]);
        // the client forged the first entry; the edge proxy appended the real one
        assert_eq!(
            resolve(
                ip("10.0.0.2"),
                ["1.1.1.1, 198.51.100.7", "10.0.0.1"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("::1"), ["[2001:db8::5]:443"], &trusted),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_or_unreadable_the_last_trusted_one_is_used() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("10.0.0.2"), ["10.0.0.3"], &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["1.1.1.1, garbage"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(resolve(ip("10.0.0.2"), [], &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), ["192.0.2.1"], &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("192.0.2.1")), "192.0.2.1");
    }
}
