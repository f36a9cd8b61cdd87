//! The agent's own Vault login, renewal and re-authentication.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::{info, warn};

use crate::config::{AuthConfig, JwtSource};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::vault::{AuthInfo, Method, VaultClient, VaultError};

/// Login failed: the config or the credentials are wrong, or Vault is down.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A credential file or env var could not be read.
    #[error("cannot read login credential: {0}")]
    Credential(String),
    /// Vault said no, or was unreachable.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

struct Current {
    token: Arc<Secret<String>>,
    renewable: bool,
    /// `None`: the token does not expire.
    expires: Option<Instant>,
    ttl: Duration,
}

/// Holds the agent token; [`Auth::maintain`] keeps it alive.
pub struct Auth {
    cfg: AuthConfig,
    vault: VaultClient,
    current: RwLock<Option<Current>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("method", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Renew at about 2/3 of the TTL, clamped to [1s, 1h].
pub fn refresh_in(ttl: Duration) -> Duration {
    (ttl * 2 / 3).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

impl Auth {
    /// Creates the holder; call [`Auth::login`] before use.
    pub fn new(cfg: AuthConfig, vault: VaultClient) -> Self {
        Self {
            cfg,
            vault,
            current: RwLock::new(None),
        }
    }

    /// The current agent token.
    ///
    /// # Errors
    /// Before the first successful login.
    pub fn token(&self) -> Result<Arc<Secret<String>>, VaultError> {
        self.current
            .read()
            .expect("auth lock poisoned")
            .as_ref()
            .map(|c| c.token.clone())
            .ok_or_else(|| VaultError::Unavailable {
                path: "auth".to_owned(),
                reason: "the agent is not logged in yet".to_owned(),
            })
    }

    /// Seconds of TTL left on the agent token (`None` = no expiry or not logged in).
    pub fn ttl_left(&self) -> Option<Duration> {
        let cur = self.current.read().expect("auth lock poisoned");
        cur.as_ref()?
            .expires
            .map(|e| e.saturating_duration_since(Instant::now()))
    }

    /// Logs in with the configured method.
    pub async fn login(&self) -> Result<(), AuthError> {
        let read = |p: &std::path::Path| {
            Secret::from_file(p).map_err(|e| AuthError::Credential(format!("{}: {e}", p.display())))
        };
        let (info, method) = match &self.cfg {
            AuthConfig::AppRole {
                mount,
                role_id_file,
                secret_id_file,
            } => {
                let role_id = read(role_id_file)?;
                let secret_id = read(secret_id_file)?;
                let body = json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()});
                (
                    self.vault
                        .auth_call(&format!("auth/{mount}/login"), None, &body)
                        .await?,
                    "approle",
                )
            }
            AuthConfig::Jwt {
                mount,
                role,
                source,
            } => {
                let jwt = match source {
                    JwtSource::File(p) => read(p)?,
                    JwtSource::Env(name) => Secret::new(std::env::var(name).map_err(|_| {
                        AuthError::Credential(format!("env var {name} is not set"))
                    })?),
                };
                let body = json!({"role": role, "jwt": jwt.expose()});
                (
                    self.vault
                        .auth_call(&format!("auth/{mount}/login"), None, &body)
                        .await?,
                    "jwt",
                )
            }
            AuthConfig::Cert { mount, role } => {
                let body = match role {
                    Some(r) => json!({"name": r}),
                    None => json!({}),
                };
                (
                    self.vault
                        .auth_call(&format!("auth/{mount}/login"), None, &body)
                        .await?,
                    "cert",
                )
            }
            AuthConfig::Token { file } => {
                let token = read(file)?;
                let v = self
                    .vault
                    .request(Method::Get, "auth/token/lookup-self", Some(&token), None)
                    .await?
                    .unwrap_or_default();
                let ttl = v
                    .pointer("/data/ttl")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                let renewable = v
                    .pointer("/data/renewable")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false);
                let accessor = v
                    .pointer("/data/accessor")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let info = AuthInfo {
                    client_token: token,
                    accessor,
                    lease_duration: ttl,
                    renewable,
                    metadata: None,
                };
                (info, "token")
            }
        };
        info!(
            method,
            ttl_secs = info.lease_duration,
            renewable = info.renewable,
            "Logged in to Vault."
        );
        self.set(info);
        Ok(())
    }

    fn set(&self, info: AuthInfo) {
        let ttl = Duration::from_secs(info.lease_duration);
        let cur = Current {
            token: Arc::new(info.client_token),
            renewable: info.renewable,
            expires: (info.lease_duration > 0).then(|| Instant::now() + ttl),
            ttl,
        };
        *self.current.write().expect("auth lock poisoned") = Some(cur);
    }

    async fn renew(&self) -> Result<(), VaultError> {
        let token = self.token()?;
        let info = self
            .vault
            .auth_call("auth/token/renew-self", Some(&token), &json!({}))
            .await?;
        if info.lease_duration == 0 {
            return Err(VaultError::Malformed {
                path: "auth/token/renew-self".to_owned(),
                what: "no TTL".to_owned(),
            });
        }
        self.set(info);
        Ok(())
    }

    /// Keeps the token alive forever: renew at 2/3 TTL; when renewal fails or the TTL would be
    /// cut short (max TTL reached), log in again; when Vault is down, retry with back-off.
    pub async fn maintain(self: Arc<Self>, metrics: Arc<Metrics>) {
        let mut backoff = crate::backoff::Backoff::new();
        loop {
            let (wait, renewable, ttl) = {
                let cur = self.current.read().expect("auth lock poisoned");
                match cur.as_ref() {
                    Some(Current {
                        expires: Some(_),
                        ttl,
                        renewable,
                        ..
                    }) => (Some(refresh_in(*ttl)), *renewable, *ttl),
                    Some(_) => (None, false, Duration::ZERO),
                    None => (Some(Duration::ZERO), false, Duration::ZERO),
                }
            };
            metrics.set_token_ttl(self.ttl_left());
            let Some(wait) = wait else {
                // Non-expiring token: only refresh the gauge.
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            };
            tokio::time::sleep(wait).await;
            let renewed = if renewable {
                match self.renew().await {
                    Ok(()) => {
                        let new_ttl = self.ttl_left().unwrap_or_default();
                        info!(ttl_secs = new_ttl.as_secs(), "Renewed the agent token.");
                        // A renewal that no longer restores the TTL means max TTL is near.
                        new_ttl * 2 >= ttl
                    }
                    Err(e) => {
                        metrics.vault_error(&e);
                        warn!(error = %e, "Could not renew the agent token; logging in again.");
                        false
                    }
                }
            } else {
                false
            };
            if renewed {
                backoff.reset();
                continue;
            }
            match self.login().await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    if let AuthError::Vault(v) = &e {
                        metrics.vault_error(v);
                    }
                    let d = backoff.next_delay();
                    warn!(error = %e, retry_in_ms = d.as_millis(), "Could not log in to Vault.");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// Verifies a build's JWT by logging in with it at `mount`/`role` and returns the claims
    /// Vault vouches for (`claim_mappings` -> token metadata). The token is revoked at once.
    pub async fn verify_caller_jwt(
        &self,
        mount: &str,
        role: &str,
        jwt: &Secret<String>,
    ) -> Result<std::collections::BTreeMap<String, String>, VaultError> {
        let body = json!({"role": role, "jwt": jwt.expose()});
        let info = self
            .vault
            .auth_call(&format!("auth/{mount}/login"), None, &body)
            .await?;
        if let Err(e) = self
            .vault
            .request(
                Method::Post,
                "auth/token/revoke-self",
                Some(&info.client_token),
                None,
            )
            .await
        {
            warn!(error = %e, "Could not revoke the token from verifying a build JWT.");
        }
        Ok(info.metadata.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_two_thirds_clamped() {
        assert_eq!(refresh_in(Duration::from_secs(90)), Duration::from_secs(60));
        assert_eq!(
            refresh_in(Duration::from_millis(300)),
            Duration::from_secs(1)
        );
        assert_eq!(
            refresh_in(Duration::from_secs(86400)),
            Duration::from_secs(3600)
        );
    }
}
