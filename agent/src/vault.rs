//! A small Vault / OpenBao HTTP client.
//!
//! NOTE: we use reqwest directly instead of vaultrs. The agent needs endpoints vaultrs lacks or
//! shapes differently (`sys/leases/revoke` with `"sync": true`, `sys/leases/lookup` to verify,
//! `auth/token/lookup-accessor`, JWT login whose `auth.metadata` carries the verified claims),
//! every call here uses a *different* token (agent token vs. session token), and vaultrs keeps
//! tokens in plain `String`s under a derived `Debug` (`VaultClientSettings`), which our
//! `Secret<T>` rule forbids. A dozen endpoints over one `request` function is less code than
//! wrapping vaultrs with raw calls on the side.
//!
//! Transport buffers inside reqwest/hyper are outside our control and are not zeroized; every
//! token and credential we keep is parsed straight into a [`Secret`].

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::VaultConfig;
use crate::secret::Secret;

/// Why a Vault call failed; callers branch on it (retry vs. give up vs. deny).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Connection refused, timeout, sealed, or a 5xx: try again later.
    #[error("Vault is unavailable ({path}): {reason}")]
    Unavailable { path: String, reason: String },
    /// 403: the token lacks a capability (or is gone).
    #[error("Vault denied {path} (HTTP 403): {message}")]
    Denied { path: String, message: String },
    /// Any other 4xx.
    #[error("Vault rejected {path} (HTTP {status}): {message}")]
    Rejected {
        path: String,
        status: u16,
        message: String,
    },
    /// A 2xx whose body lacks what we need.
    #[error("unexpected response from Vault ({path}): {what}")]
    Malformed { path: String, what: String },
}

impl VaultError {
    /// The closed label set for `keyward_agent_vault_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Denied { .. } => "denied",
            Self::Rejected { .. } => "rejected",
            Self::Malformed { .. } => "malformed",
        }
    }

    /// Whether the error text says the object is already gone (revocation is then done).
    pub fn is_gone(&self) -> bool {
        match self {
            Self::Rejected { message, .. } | Self::Denied { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("invalid lease")
                    || m.contains("invalid accessor")
                    || m.contains("lease not found")
                    || m.contains("bad token")
            }
            _ => false,
        }
    }
}

/// HTTP method subset.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    /// GET
    Get,
    /// PUT/POST (Vault treats them alike)
    Post,
}

/// A cheap-to-clone handle on the Vault API.
#[derive(Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    address: String,
    namespace: Option<String>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The `auth` block of a login or token-create response.
#[derive(Debug, Deserialize)]
pub struct AuthInfo {
    /// The token.
    pub client_token: Secret<String>,
    /// Its accessor (not secret: recorded in the ledger).
    pub accessor: String,
    /// TTL in seconds (0 = no expiry).
    #[serde(default)]
    pub lease_duration: u64,
    /// Whether `renew-self` may extend it.
    #[serde(default)]
    pub renewable: bool,
    /// Metadata (for JWT logins: the mapped claims).
    #[serde(default)]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// A response carrying secret data and maybe a lease.
#[derive(Debug)]
pub struct SecretResponse {
    /// `lease_id` ("" when unleased).
    pub lease_id: String,
    /// Seconds.
    pub lease_duration: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// `data` fields as strings; values are secrets.
    pub data: Vec<(String, Secret<String>)>,
    /// Non-secret fields we need (e.g. PKI serial, expiration).
    pub meta: serde_json::Map<String, Value>,
}

impl VaultClient {
    /// Builds the HTTP client (CA, client certificate, timeout).
    pub fn new(cfg: &VaultConfig) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mut b = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .use_rustls_tls();
        if let Some(ca) = &cfg.ca_file {
            let pem = fs_err::read(ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("parsing CA bundle {}", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &cfg.client_identity {
            let mut pem = zeroize::Zeroizing::new(fs_err::read(cert)?);
            pem.extend_from_slice(b"\n");
            pem.extend_from_slice(&zeroize::Zeroizing::new(fs_err::read(key)?));
            let id = reqwest::Identity::from_pem(&pem).context("parsing client certificate/key")?;
            b = b.identity(id);
        }
        Ok(Self {
            http: b.build()?,
            address: cfg.address.clone(),
            namespace: cfg.namespace.clone(),
        })
    }

    /// One API call. `path` is below `/v1/`. Returns the body (`None` for 204).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret<String>>,
        body: Option<&Value>,
    ) -> Result<Option<Value>, VaultError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut req = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
        };
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t.expose().as_str());
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let unavailable = |reason: String| VaultError::Unavailable {
            path: path.to_owned(),
            reason,
        };
        // `without_url`: the URL holds no secret, but keep error text short and stable.
        let resp = req
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let bytes = zeroize::Zeroizing::new(
            resp.bytes()
                .await
                .map_err(|e| unavailable(e.without_url().to_string()))?
                .to_vec(),
        );
        if status.is_success() {
            if bytes.is_empty() || status.as_u16() == 204 {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| VaultError::Malformed {
                    path: path.to_owned(),
                    what: e.to_string(),
                });
        }
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("errors").and_then(Value::as_array).map(|errs| {
                    errs.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .unwrap_or_default()
            .replace(['\n', '\t'], " ");
        Err(match status.as_u16() {
            403 => VaultError::Denied {
                path: path.to_owned(),
                message,
            },
            429 | 500..=599 => unavailable(format!("HTTP {status}: {message}")),
            s => VaultError::Rejected {
                path: path.to_owned(),
                status: s,
                message,
            },
        })
    }

    /// A call whose response must carry `auth` (logins, token create).
    pub async fn auth_call(
        &self,
        path: &str,
        token: Option<&Secret<String>>,
        body: &Value,
    ) -> Result<AuthInfo, VaultError> {
        let v = self.request(Method::Post, path, token, Some(body)).await?;
        let auth = v
            .and_then(|mut v| v.get_mut("auth").map(Value::take))
            .ok_or_else(|| VaultError::Malformed {
                path: path.to_owned(),
                what: "no auth block".to_owned(),
            })?;
        AuthInfo::deserialize(auth).map_err(|e| VaultError::Malformed {
            path: path.to_owned(),
            what: e.to_string(),
        })
    }

    /// A call returning secret `data` (database creds, kv, pki issue, generic read).
    pub async fn secret_call(
        &self,
        method: Method,
        path: &str,
        token: &Secret<String>,
        body: Option<&Value>,
        data_pointer: &str,
    ) -> Result<SecretResponse, VaultError> {
        let malformed = |what: &str| VaultError::Malformed {
            path: path.to_owned(),
            what: what.to_owned(),
        };
        let mut v = self
            .request(method, path, Some(token), body)
            .await?
            .ok_or_else(|| malformed("empty body"))?;
        let lease_id = v
            .get("lease_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let lease_duration = v.get("lease_duration").and_then(Value::as_u64).unwrap_or(0);
        let renewable = v.get("renewable").and_then(Value::as_bool).unwrap_or(false);
        let Some(Value::Object(data)) = v.pointer_mut(data_pointer).map(Value::take) else {
            return Err(malformed("no data"));
        };
        let mut out = Vec::with_capacity(data.len());
        let mut meta = serde_json::Map::new();
        for (k, val) in data {
            match val {
                Value::String(mut s) => {
                    out.push((k, Secret::from_str_copy(&s)));
                    zeroize::Zeroize::zeroize(&mut s);
                }
                Value::Null => {}
                other => {
                    // Numbers, lists (e.g. ca_chain) are kept as JSON text.
                    let mut text = other.to_string();
                    if matches!(other, Value::Number(_)) {
                        meta.insert(k.clone(), other);
                    }
                    out.push((k, Secret::from_str_copy(&text)));
                    zeroize::Zeroize::zeroize(&mut text);
                }
            }
        }
        // Non-secret fields that the ledger needs are copied explicitly.
        for key in ["serial_number", "expiration"] {
            if let Some((_, s)) = out.iter().find(|(k, _)| k == key) {
                meta.insert(key.to_owned(), Value::String(s.expose().clone()));
            }
        }
        Ok(SecretResponse {
            lease_id,
            lease_duration,
            renewable,
            data: out,
            meta,
        })
    }
}
