//! Offline validators: structure and checksum checks that cut false positives without the
//! network.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// A validator a rule may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validator {
    /// `gh?_` tokens: the last 6 base62 characters are the CRC32 of the 30 before them.
    GithubChecksum,
    /// `npm_` tokens: the same scheme as GitHub's.
    NpmChecksum,
    /// A PEM private key whose body decodes to the structure its header names.
    PemPrivateKey,
    /// A JWT whose header and payload decode to JSON objects and whose header names an `alg`.
    Jwt,
    /// Matrix (Synapse) `syt_`/`syr_` tokens: the part after the last `_` is the base62 CRC32 of
    /// everything before it.
    MatrixChecksum,
    /// Bech32 or Bech32m strings (age secret keys, Nostr `nsec1`): the 6-character BCH checksum.
    Bech32,
    /// Base58Check strings (BIP32 extended private keys): the last 4 bytes are the start of
    /// SHA-256(SHA-256(payload)).
    Base58Check,
}

/// The outcome of validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validation {
    /// The rule has no validator.
    NotChecked,
    /// The validator passed; the string is its name in reports (`checksum-ok`, `pem-ok`, `jwt-ok`).
    Passed(&'static str),
    /// The validator failed; kept only when the scanner is told to keep such matches.
    Failed(&'static str),
    /// An exact match of a known credential (a canary).
    Canary,
}

impl Validation {
    /// The name used in reports: `none`, `checksum-ok`, `checksum-bad`, `canary`, ….
    pub fn as_str(&self) -> &'static str {
        match self {
            Validation::NotChecked => "none",
            Validation::Passed(s) | Validation::Failed(s) => s,
            Validation::Canary => "canary",
        }
    }
}

impl Validator {
    pub(crate) const NAMES: [&'static str; 7] = [
        "github-checksum",
        "npm-checksum",
        "pem-private-key",
        "jwt",
        "matrix-checksum",
        "bech32",
        "base58check",
    ];

    pub(crate) fn parse(s: &str) -> Option<Validator> {
        Some(match s {
            "github-checksum" => Validator::GithubChecksum,
            "npm-checksum" => Validator::NpmChecksum,
            "pem-private-key" => Validator::PemPrivateKey,
            "jwt" => Validator::Jwt,
            "matrix-checksum" => Validator::MatrixChecksum,
            "bech32" => Validator::Bech32,
            "base58check" => Validator::Base58Check,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Validator::GithubChecksum => "github-checksum",
            Validator::NpmChecksum => "npm-checksum",
            Validator::PemPrivateKey => "pem-private-key",
            Validator::Jwt => "jwt",
            Validator::MatrixChecksum => "matrix-checksum",
            Validator::Bech32 => "bech32",
            Validator::Base58Check => "base58check",
        }
    }

    pub(crate) fn check(self, secret: &[u8]) -> Validation {
        let (ok, pass, fail) = match self {
            Validator::GithubChecksum | Validator::NpmChecksum => {
                (checksum_token_ok(secret), "checksum-ok", "checksum-bad")
            }
            Validator::PemPrivateKey => (pem_private_key_ok(secret), "pem-ok", "pem-bad"),
            Validator::Jwt => (jwt_ok(secret), "jwt-ok", "jwt-bad"),
            Validator::MatrixChecksum => {
                (matrix_checksum_ok(secret), "checksum-ok", "checksum-bad")
            }
            Validator::Bech32 => (bech32_ok(secret), "checksum-ok", "checksum-bad"),
            Validator::Base58Check => (base58check_ok(secret), "checksum-ok", "checksum-bad"),
        };
        if ok {
            Validation::Passed(pass)
        } else {
            Validation::Failed(fail)
        }
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 form of a CRC32, left-padded with `0` to 6 characters, as GitHub and npm tokens end.
///
/// # Example
/// ```
/// assert_eq!(keyward_detectors::token_checksum(b""), "000000");
/// ```
pub fn token_checksum(random: &[u8]) -> String {
    let mut n = crc32fast::hash(random);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

/// `<prefix>_<30 random base62><6 checksum>`: checks the checksum.
fn checksum_token_ok(secret: &[u8]) -> bool {
    let Some(us) = memchr::memrchr(b'_', secret) else {
        return false;
    };
    let body = &secret[us + 1..];
    if body.len() != 36 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    token_checksum(&body[..30]).as_bytes() == &body[30..]
}

/// `syt_<base64 user>_<random>_<checksum>` (Synapse's `generate_access_token`): the last part is
/// the 6-character base62 CRC32 of everything before the `_` that precedes it.
fn matrix_checksum_ok(secret: &[u8]) -> bool {
    let Some(us) = memchr::memrchr(b'_', secret) else {
        return false;
    };
    let (base, sum) = (&secret[..us], &secret[us + 1..]);
    sum.len() == 6 && token_checksum(base).as_bytes() == sum
}

/// The bech32 data alphabet, in value order.
const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// BIP 173 polymod over 5-bit values.
fn bech32_polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// `<hrp>1<data><6 checksum>`, one case throughout: the checksum is a valid Bech32 (BIP 173) or
/// Bech32m (BIP 350) checksum. The 90-character limit of BIP 173 is not enforced: age keys with
/// long plugin names exceed it.
fn bech32_ok(secret: &[u8]) -> bool {
    if secret.iter().any(u8::is_ascii_lowercase) && secret.iter().any(u8::is_ascii_uppercase) {
        return false;
    }
    let lower = secret.to_ascii_lowercase();
    let Some(sep) = memchr::memrchr(b'1', &lower) else {
        return false;
    };
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..]);
    if hrp.is_empty() || data.len() < 6 || !hrp.iter().all(|b| (33..=126).contains(b)) {
        return false;
    }
    let Some(values) = data
        .iter()
        .map(|c| {
            BECH32_CHARSET
                .iter()
                .position(|x| x == c)
                .and_then(|p| u8::try_from(p).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let expanded = hrp
        .iter()
        .map(|c| c >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.iter().map(|c| c & 31))
        .chain(values);
    matches!(bech32_polymod(expanded), 1 | 0x2bc8_30a3)
}

/// The Bitcoin base58 alphabet, in value order.
const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Decodes base58 (leading `1`s are leading zero bytes); `None` on a byte outside the alphabet.
fn decode_base58(text: &[u8]) -> Option<Vec<u8>> {
    // Big-endian base-256 digits of the number read so far; text is short (BIP32 keys are 111
    // characters), so the quadratic loop is fine.
    let mut num: Vec<u8> = Vec::with_capacity(text.len());
    for &c in text {
        let mut carry = u32::try_from(BASE58.iter().position(|&x| x == c)?).ok()?;
        for d in num.iter_mut().rev() {
            carry += u32::from(*d) * 58;
            *d = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            num.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.iter().take_while(|&&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(num);
    Some(out)
}

/// Base58Check: a payload followed by the first 4 bytes of its double SHA-256.
fn base58check_ok(secret: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let Some(bytes) = decode_base58(secret) else {
        return false;
    };
    if bytes.len() < 5 {
        return false;
    }
    let (payload, sum) = bytes.split_at(bytes.len() - 4);
    Sha256::digest(Sha256::digest(payload))[..4] == *sum
}

/// Decodes standard base64, ignoring whitespace.
fn decode_base64_lines(text: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(&compact)
        .or_else(|_| STANDARD_NO_PAD.decode(&compact))
        .ok()
}

/// A PEM private key: `-----BEGIN X-----`, a body that decodes, `-----END X-----`, and a decoded
/// structure that fits X (DER SEQUENCE for PKCS#1/#8/EC/DSA, `openssh-key-v1` for OpenSSH, an
/// OpenPGP packet for PGP blocks).
fn pem_private_key_ok(secret: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(secret) else {
        return false;
    };
    let text = text.trim();
    let Some(rest) = text.strip_prefix("-----BEGIN ") else {
        return false;
    };
    let Some(label_end) = rest.find("-----") else {
        return false;
    };
    let label = &rest[..label_end];
    let body_and_end = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let Some(end) = body_and_end.find(&end_marker) else {
        return false;
    };
    let mut body = &body_and_end[..end];
    // PGP armor and traditional encrypted PEM carry `Key: value` headers before a blank line.
    if let Some(blank) = body.find("\n\n").or_else(|| body.find("\r\n\r\n"))
        && body[..blank].contains(':')
    {
        body = &body[blank..];
    }
    // PGP armor ends the body with a `=XXXX` CRC-24 line.
    let body: String = body
        .lines()
        .filter(|l| !(label.starts_with("PGP") && l.trim_start().starts_with('=')))
        .collect::<Vec<_>>()
        .join("\n");
    let Some(der) = decode_base64_lines(body.as_bytes()) else {
        return false;
    };
    if der.len() < 32 {
        return false;
    }
    if label == "OPENSSH PRIVATE KEY" {
        der.starts_with(b"openssh-key-v1\0")
    } else if label.starts_with("PGP") {
        der[0] & 0x80 != 0
    } else {
        der[0] == 0x30
    }
}

fn jwt_ok(secret: &[u8]) -> bool {
    let mut parts = secret.split(|&b| b == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let decode = |p: &[u8]| -> Option<serde_json::Map<String, serde_json::Value>> {
        let trimmed: &[u8] = p
            .strip_suffix(b"==")
            .or_else(|| p.strip_suffix(b"="))
            .unwrap_or(p);
        let bytes = URL_SAFE_NO_PAD.decode(trimmed).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        }
    };
    let Some(h) = decode(header) else {
        return false;
    };
    h.get("alg").is_some_and(serde_json::Value::is_string) && decode(payload).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(prefix: &str, random: &str) -> String {
        format!("{prefix}_{random}{}", token_checksum(random.as_bytes()))
    }

    #[test]
    fn github_checksum() {
        let t = token("ghp", "R7kQx2mVn9PbT4wLc8ZsYd3HfJ6gAe");
        assert_eq!(
            Validator::GithubChecksum.check(t.as_bytes()),
            Validation::Passed("checksum-ok")
        );
        let mut bad = t.into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            Validator::GithubChecksum.check(&bad),
            Validation::Failed("checksum-bad")
        );
        assert!(!checksum_token_ok(b"ghp_short"));
    }

    #[test]
    fn checksum_matches_known_value() {
        // crc32("hello") = 0x3610a686 = 907060870; in base62 that is "zNvy2" -> padded "0zNvy2".
        assert_eq!(crc32fast::hash(b"hello"), 907_060_870);
        assert_eq!(token_checksum(b"hello"), "0zNvy2");
    }

    #[test]
    fn jwt() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"1234567890"}"#);
        let good = format!("{h}.{p}.c2lnbmF0dXJl");
        assert_eq!(
            Validator::Jwt.check(good.as_bytes()),
            Validation::Passed("jwt-ok")
        );
        let no_alg = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT"}"#);
        assert_eq!(
            Validator::Jwt.check(format!("{no_alg}.{p}.x").as_bytes()),
            Validation::Failed("jwt-bad")
        );
        assert_eq!(
            Validator::Jwt.check(b"eyJ.not.json"),
            Validation::Failed("jwt-bad")
        );
    }

    #[test]
    fn matrix_checksum() {
        let base = "syt_YWxpY2U_HqLcKoNvRzTbWmXsPeAd";
        let good = format!("{base}_{}", token_checksum(base.as_bytes()));
        assert_eq!(
            Validator::MatrixChecksum.check(good.as_bytes()),
            Validation::Passed("checksum-ok")
        );
        let bad = good.replace("HqLc", "HqLd");
        assert_eq!(
            Validator::MatrixChecksum.check(bad.as_bytes()),
            Validation::Failed("checksum-bad")
        );
        assert!(!matrix_checksum_ok(b"syt_nochecksum"));
    }

    #[test]
    fn bech32() {
        // BIP 173 and BIP 350 test vectors.
        for ok in [
            "A12UEL5L",
            "a12uel5l",
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
            "A1LQFN3A",
            "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
        ] {
            assert_eq!(
                Validator::Bech32.check(ok.as_bytes()),
                Validation::Passed("checksum-ok"),
                "{ok}"
            );
        }
        for bad in [
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e2w",
            "A12uEL5L",
            "a1b2c3",
            "1qzzfhee",
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxb",
        ] {
            assert_eq!(
                Validator::Bech32.check(bad.as_bytes()),
                Validation::Failed("checksum-bad"),
                "{bad}"
            );
        }
    }

    #[test]
    fn base58check() {
        // The genesis block's address and BIP 32 test vector 1's master key.
        for ok in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
        ] {
            assert_eq!(
                Validator::Base58Check.check(ok.as_bytes()),
                Validation::Passed("checksum-ok"),
                "{ok}"
            );
        }
        for bad in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
            "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHj",
            "0OIl",
            "1111",
        ] {
            assert_eq!(
                Validator::Base58Check.check(bad.as_bytes()),
                Validation::Failed("checksum-bad"),
                "{bad}"
            );
        }
        assert_eq!(decode_base58(b"11").unwrap(), vec![0, 0]);
        assert_eq!(decode_base58(b"5R").unwrap(), vec![1, 0]);
    }

    #[test]
    fn pem() {
        let der = [0x30u8; 64];
        let body = STANDARD.encode(der);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----",
            &body[..40],
            &body[40..]
        );
        assert_eq!(
            Validator::PemPrivateKey.check(pem.as_bytes()),
            Validation::Passed("pem-ok")
        );
        let mism = pem.replace("END PRIVATE", "END RSA PRIVATE");
        assert_eq!(
            Validator::PemPrivateKey.check(mism.as_bytes()),
            Validation::Failed("pem-bad")
        );
        let junk = "-----BEGIN PRIVATE KEY-----\n!!!not base64!!!\n-----END PRIVATE KEY-----";
        assert_eq!(
            Validator::PemPrivateKey.check(junk.as_bytes()),
            Validation::Failed("pem-bad")
        );
        let mut ssh = b"openssh-key-v1\0".to_vec();
        ssh.extend([7u8; 40]);
        let ssh_pem = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----",
            STANDARD.encode(&ssh)
        );
        assert_eq!(
            Validator::PemPrivateKey.check(ssh_pem.as_bytes()),
            Validation::Passed("pem-ok")
        );
    }
}
