//! Safe retries of `POST /orders`: an `Idempotency-Key` makes a double-tapped "Place
//! order" button, or a retry after a lost response, place one order, not two.
//!
//! The key is scoped to the user and stored with a fingerprint of the request. While the
//! first request runs, the key is *in progress*; the order's own transaction attaches the
//! order to the key, so a committed order is never placed twice even if the process dies
//! before the response is stored; the response is then kept for replay. Keys expire after
//! [`KEY_TTL`].

use ring::digest;
use time::Duration;

use crate::error::FieldError;
use crate::values::OrderId;

/// How long a key is remembered.
pub const KEY_TTL: Duration = Duration::hours(24);

/// How long an in-progress key without an order may stay claimed. A request that holds it
/// longer has died (every statement times out long before): the key is taken over.
pub const IN_PROGRESS_LEASE: Duration = Duration::seconds(60);

/// A client's idempotency key: 1 to 255 visible ASCII characters (a UUID, typically).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::new(
                "Idempotency-Key",
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {} visible ASCII characters",
                    Self::MAX_LEN
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of what a request asked for, to tell a retry from a different request that
/// reuses the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(pub [u8; 32]);

impl RequestFingerprint {
    /// SHA-256 of the request's canonical bytes (the caller canonicalises, e.g. by
    /// re-serialising parsed JSON with sorted keys, so whitespace does not matter).
    pub fn of(canonical: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, canonical).as_ref());
        Self(out)
    }
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What the store says about a key when a request arrives with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is new (or expired, or abandoned): this request owns it now.
    Claimed,
    /// The same request finished before: replay its response.
    Replay(StoredResponse),
    /// The same request placed this order, but its response was never stored (the process
    /// died in between): answer from the order, and store that.
    OrderPlaced(OrderId),
    /// The same key is being used by a request that is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("3f1c0e3e-9d7a-4b4e-9a53-0c1f6a0e6b11").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "has space", "ключ", &"k".repeat(256)] {
            let error = IdempotencyKey::parse(bad).unwrap_err();
            assert_eq!(error.field, "Idempotency-Key", "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = RequestFingerprint::of(br#"{"items":[{"product_id":1,"quantity":1}]}"#);
        let b = RequestFingerprint::of(br#"{"items":[{"product_id":1,"quantity":2}]}"#);
        assert_ne!(a, b);
        assert_eq!(
            a,
            RequestFingerprint::of(br#"{"items":[{"product_id":1,"quantity":1}]}"#)
        );
    }
}
