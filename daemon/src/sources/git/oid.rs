//! [`ObjectId`] and the object-id sets and maps the walk keeps: ids, never contents, so memory
//! grows with the number of objects and not with their size.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A SHA-1 object id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 20]);

impl ObjectId {
    /// The all-zero id (never a real object).
    pub const ZERO: ObjectId = ObjectId([0; 20]);

    /// From raw bytes; `None` unless exactly 20.
    pub fn from_bytes(b: &[u8]) -> Option<ObjectId> {
        <[u8; 20]>::try_from(b).ok().map(ObjectId)
    }

    /// From 40 hex digits.
    pub fn from_hex(hex: &[u8]) -> Option<ObjectId> {
        if hex.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(ObjectId(out))
    }

    /// As a git2 id.
    pub fn to_git2(self) -> git2::Oid {
        git2::Oid::from_bytes(&self.0).expect("20 bytes is a SHA-1 id")
    }

    /// From a git2 id (SHA-1 repositories only; SHA-256 ids are truncated and refused by the
    /// caller before this is reached).
    pub fn from_git2(oid: git2::Oid) -> ObjectId {
        ObjectId::from_bytes(oid.as_bytes()).unwrap_or(ObjectId::ZERO)
    }
}

impl std::hash::Hash for ObjectId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_le_bytes(
            self.0[..8].try_into().expect("an id has 20 bytes"),
        ));
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Hashes an object id by its first eight bytes: ids are already uniformly distributed, so
/// SipHash over all twenty would only cost time.
#[derive(Default)]
pub struct OidHasher(u64);

impl Hasher for OidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `ObjectId` (through `write_u64`) is hashed with this; anything else still works.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

/// A set of object ids.
pub type OidSet = HashSet<ObjectId, BuildHasherDefault<OidHasher>>;
/// A map keyed by object id.
pub type OidMap<V> = HashMap<ObjectId, V, BuildHasherDefault<OidHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hex = "0123456789abcdef0123456789abcdef01234567";
        let id = ObjectId::from_hex(hex.as_bytes()).unwrap();
        assert_eq!(id.to_string(), hex);
        assert!(ObjectId::from_hex(b"xyz").is_none());
    }

    #[test]
    fn set_holds_ids() {
        let mut s = OidSet::default();
        s.insert(ObjectId([1; 20]));
        assert!(s.contains(&ObjectId([1; 20])));
        assert!(!s.contains(&ObjectId([2; 20])));
    }
}
