//! Rate limiting: a keyed GCRA limiter with bounded memory, and the client-address rules.
//!
//! Hand-rolled rather than `governor`: a limiter here is one `Instant` per key behind a
//! mutex, time comes in as a parameter (so tests move it instead of sleeping), and the
//! memory bound — at most `max_keys` keys, evicting the least useful first — is exactly
//! what we need, which governor's keyed store does not offer (it only prunes on demand).
//!
//! GCRA ("generic cell rate algorithm") is a token bucket stored as a single timestamp per
//! key, the *theoretical arrival time* (TAT): a request is allowed when the TAT it would
//! push forward stays within `burst` emission intervals of now. A key whose TAT has passed
//! has a full allowance, exactly as if it were absent, so it can be forgotten for free.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::TrustedProxy;

/// How often expired keys are swept out even when the limiter is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// `per_minute` requests per minute for each key, of which `burst` may come at once.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    /// `None`: no limit.
    quota: Option<Quota>,
    max_keys: usize,
    state: Mutex<State<K>>,
}

#[derive(Debug, Clone, Copy)]
struct Quota {
    /// The time one request "costs": a minute divided by the per-minute rate.
    interval: Duration,
    /// How far ahead of now a key's TAT may run: `burst` intervals.
    tolerance: Duration,
}

#[derive(Debug)]
struct State<K> {
    tats: HashMap<K, Instant>,
    last_sweep: Option<Instant>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// A `per_minute` of 0 turns the limit off; a `burst` of 0 counts as 1.
    pub(crate) fn new(per_minute: u32, burst: u32, max_keys: usize) -> Self {
        let quota = (per_minute > 0).then(|| {
            let interval = Duration::from_secs(60) / per_minute;
            Quota {
                interval,
                tolerance: interval.checked_mul(burst.max(1)).unwrap_or(Duration::MAX),
            }
        });
        Self {
            quota,
            max_keys: max_keys.max(1),
            state: Mutex::new(State {
                tats: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Counts one request of `key` at `now`, or says how long it must wait.
    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        // The critical section cannot panic halfway through an update, so a poisoned lock
        // still guards consistent data.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.sweep_if_due(now);
        let known = state.tats.get(&key).copied();
        let tat = known.filter(|tat| *tat > now).unwrap_or(now);
        let new_tat = tat + quota.interval;
        let ahead = new_tat - now;
        if ahead > quota.tolerance {
            return Err(ahead - quota.tolerance);
        }
        if known.is_none() && state.tats.len() >= self.max_keys {
            state.make_room(now, self.max_keys);
        }
        state.tats.insert(key, new_tat);
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tats
            .len()
    }
}

impl<K: Hash + Eq> State<K> {
    fn sweep_if_due(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|last| now.saturating_duration_since(last) >= SWEEP_EVERY);
        if due {
            self.tats.retain(|_, tat| *tat > now);
            self.last_sweep = Some(now);
        }
    }

    /// Frees room for one more key. Keys with a full allowance go first, for free; if that
    /// is not enough (more than `max_keys` clients active at once), the tenth of the keys
    /// closest to a full allowance are forgotten — they lose the least by it — so that the
    /// O(n) scan is paid once per tenth of the capacity, not on every new key.
    fn make_room(&mut self, now: Instant, max_keys: usize) {
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.len() < max_keys {
            return;
        }
        let evict = (self.tats.len() + 1 - max_keys).max(max_keys / 10).max(1);
        let mut tats: Vec<Instant> = self.tats.values().copied().collect();
        let (_, threshold, _) = tats.select_nth_unstable(evict - 1);
        let threshold = *threshold;
        self.tats.retain(|_, tat| *tat > threshold);
    }
}

/// What the per-IP limiter counts: an IPv4 address, or an IPv6 /64 network — one IPv6
/// client usually holds a whole /64, and keying single addresses would let it rotate
/// through them for a fresh allowance each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries left of
/// it were written by the client and prove nothing. `forwarded_for` holds the header's
/// values in the order they arrived.
///
/// If the chain holds only trusted proxies, the left-most of them is the best we know; if
/// an entry is not an address, the walk stops at the last trustworthy hop.
pub(crate) fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted_proxies: &[TrustedProxy],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| is_trusted(ip, trusted_proxies);
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Whether `ip` is one of the trusted proxies or in one of their ranges.
pub(crate) fn is_trusted(ip: IpAddr, trusted_proxies: &[TrustedProxy]) -> bool {
    trusted_proxies.iter().any(|proxy| proxy.contains(ip))
}

/// `203.0.113.5`, `203.0.113.5:443`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|socket| socket.ip()))
        .or_else(|_| {
            hop.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
        })
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Whole seconds to wait, at least 1, for a `Retry-After` header.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_burst_is_allowed_then_one_request_per_interval() {
        let limiter = RateLimiter::new(10, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(1, t0), Ok(()));
        }
        assert_eq!(limiter.check(1, t0), Err(secs(6)));
        assert_eq!(limiter.check(1, t0 + secs(2)), Err(secs(4)));
        assert_eq!(limiter.check(1, t0 + secs(6)), Ok(()));
        assert_eq!(limiter.check(1, t0 + secs(6)), Err(secs(6)));
    }

    #[test]
    fn keys_are_limited_independently() {
        let limiter = RateLimiter::new(1, 1, 100);
        let t0 = Instant::now();
        assert_eq!(limiter.check(1, t0), Ok(()));
        assert_eq!(limiter.check(1, t0), Err(secs(60)));
        assert_eq!(limiter.check(2, t0), Ok(()));
    }

    #[test]
    fn a_refused_request_does_not_cost_anything() {
        let limiter = RateLimiter::new(60, 1, 100);
        let t0 = Instant::now();
        assert_eq!(limiter.check(1, t0), Ok(()));
        for _ in 0..10 {
            assert!(limiter.check(1, t0).is_err());
        }
        assert_eq!(limiter.check(1, t0 + secs(1)), Ok(()));
    }

    #[test]
    fn zero_per_minute_means_no_limit() {
        let limiter = RateLimiter::new(0, 0, 1);
        let t0 = Instant::now();
        for key in 0..1000 {
            assert_eq!(limiter.check(key % 3, t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn memory_is_bounded_by_max_keys() {
        let limiter = RateLimiter::new(1, 1, 100);
        let t0 = Instant::now();
        for key in 0..10_000u32 {
            assert_eq!(limiter.check(key, t0), Ok(()));
            assert!(limiter.tracked() <= 100);
        }
    }

    #[test]
    fn the_busiest_keys_survive_eviction() {
        let limiter = RateLimiter::new(1, 5, 10);
        let t0 = Instant::now();
        // Key 0 spends its whole burst; the others one request each.
        for _ in 0..5 {
            assert_eq!(limiter.check(0, t0), Ok(()));
        }
        for key in 1..100u32 {
            assert_eq!(limiter.check(key, t0), Ok(()));
        }
        assert!(limiter.tracked() <= 10);
        assert!(limiter.check(0, t0).is_err(), "key 0 was forgotten");
    }

    #[test]
    fn keys_with_a_full_allowance_are_swept_out() {
        let limiter = RateLimiter::new(60, 1, 1000);
        let t0 = Instant::now();
        for key in 0..500u32 {
            assert_eq!(limiter.check(key, t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 500);
        assert_eq!(limiter.check(9999, t0 + SWEEP_EVERY), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxy(s: &str) -> TrustedProxy {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let client = client_ip(ip("198.51.100.7"), ["203.0.113.5"].into_iter(), &[]);
        assert_eq!(client, ip("198.51.100.7"));
        let client = client_ip(
            ip("198.51.100.7"),
            ["203.0.113.5"].into_iter(),
            &[proxy("10.0.0.1")],
        );
        assert_eq!(client, ip("198.51.100.7"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let proxies = [proxy("10.0.0.1"), proxy("10.0.0.2")];
        let client = client_ip(
            ip("10.0.0.1"),
            ["1.1.1.1, 203.0.113.5", "10.0.0.2"].into_iter(),
            &proxies,
        );
        assert_eq!(client, ip("203.0.113.5"));
    }

    #[test]
    fn proxies_may_be_trusted_by_network() {
        let proxies = [proxy("172.16.0.0/12"), proxy("fd00::/8")];
        let client = client_ip(
            ip("172.18.0.2"),
            ["203.0.113.5, 172.18.0.3"].into_iter(),
            &proxies,
        );
        assert_eq!(
            client,
            ip("203.0.113.5"),
            "both hops are in the bridge network"
        );
        let client = client_ip(ip("fd00::2"), ["2001:db8::7"].into_iter(), &proxies);
        assert_eq!(client, ip("2001:db8::7"));
        let client = client_ip(ip("172.32.0.1"), ["203.0.113.5"].into_iter(), &proxies);
        assert_eq!(client, ip("172.32.0.1"), "outside the range: not a proxy");
    }

    #[test]
    fn a_trusted_proxy_without_the_header_is_the_client() {
        let client = client_ip(ip("10.0.0.1"), std::iter::empty(), &[proxy("10.0.0.1")]);
        assert_eq!(client, ip("10.0.0.1"));
    }

    #[test]
    fn garbage_in_the_chain_stops_the_walk_at_the_last_trusted_hop() {
        let proxies = [proxy("10.0.0.1"), proxy("10.0.0.2")];
        let client = client_ip(
            ip("10.0.0.1"),
            ["203.0.113.5, unknown, 10.0.0.2"].into_iter(),
            &proxies,
        );
        assert_eq!(client, ip("10.0.0.2"));
    }

    #[test]
    fn hops_may_carry_ports_and_mapped_addresses() {
        let proxies = [proxy("10.0.0.1")];
        for (hop, expected) in [
            ("203.0.113.5:4711", "203.0.113.5"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            let client = client_ip(ip("::ffff:10.0.0.1"), [hop].into_iter(), &proxies);
            assert_eq!(client, ip(expected), "{hop}");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_network() {
        assert_eq!(
            ClientKey::from(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::from(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            ClientKey::from(ip("2001:db8:1:2::1")),
            ClientKey::from(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::from(ip("::ffff:203.0.113.9")),
            ClientKey::from(ip("203.0.113.9"))
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(6000)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
    }
}
