//! Issuing and revoking each profile kind.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Allow, Profile, ProfileKind};
use crate::lease::{Caller, Credential, now_unix};
use crate::secret::Secret;
use crate::vault::{Method, VaultClient, VaultError};

/// A credential handed to a build: env var name and value.
pub type Field = (String, Secret<String>);

/// What issuing one profile produced.
#[derive(Debug)]
pub struct Issued {
    /// Values for the build.
    pub fields: Vec<Field>,
    /// What to revoke at session end (`None`: covered by the session token, e.g. a KV read).
    pub credential: Option<Credential>,
    /// A lease to keep renewed: (lease id, its current duration).
    pub renewable: Option<(String, Duration)>,
}

/// Why a caller may not use a profile (non-secret, audited).
pub fn check_allowed(
    allow: &Allow,
    caller: &Caller,
    groups: &[u32],
    claims: Option<&BTreeMap<String, String>>,
) -> Result<(), String> {
    let by_uid = allow.uids.contains(&caller.uid);
    let by_gid = allow.gids.contains(&caller.gid) || groups.iter().any(|g| allow.gids.contains(g));
    if !by_uid && !by_gid {
        return Err(format!(
            "uid {} / gid {} not in the allow-list",
            caller.uid, caller.gid
        ));
    }
    if allow.claims.is_empty() {
        return Ok(());
    }
    let Some(claims) = claims else {
        return Err("profile requires a verified build JWT".to_owned());
    };
    for (name, accepted) in &allow.claims {
        match claims.get(name) {
            Some(v) if accepted.contains(v) => {}
            Some(v) => return Err(format!("claim {name}={v:?} not accepted")),
            None => return Err(format!("claim {name} missing")),
        }
    }
    Ok(())
}

/// Env var name for a field: the profile's mapping, or `KEYWARD_<PROFILE>_<FIELD>`.
fn env_fields(profile: &Profile, data: Vec<(String, Secret<String>)>) -> Vec<Field> {
    if profile.env.is_empty() {
        let up = |s: &str| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        };
        data.into_iter()
            .map(|(k, v)| (format!("KEYWARD_{}_{}", up(&profile.name), up(&k)), v))
            .collect()
    } else {
        data.into_iter()
            .filter_map(|(k, v)| profile.env.get(&k).map(|name| (name.clone(), v)))
            .collect()
    }
}

/// Issues one profile's credential under the session token.
pub async fn issue(
    vault: &VaultClient,
    profile: &Profile,
    session_token: &Secret<String>,
    ttl: Duration,
    deadline: u64,
    session: &str,
) -> Result<Issued, VaultError> {
    let name = profile.name.clone();
    let secs = format!("{}s", ttl.as_secs().max(1));
    match &profile.kind {
        ProfileKind::Database { mount, role } => {
            let r = vault
                .secret_call(
                    Method::Get,
                    &format!("{mount}/creds/{role}"),
                    session_token,
                    None,
                    "/data",
                )
                .await?;
            Ok(leased(profile, r, deadline))
        }
        ProfileKind::Generic { path } => {
            let r = vault
                .secret_call(Method::Get, path, session_token, None, "/data")
                .await?;
            Ok(leased(profile, r, deadline))
        }
        ProfileKind::Kv2 { mount, path } => {
            let r = vault
                .secret_call(
                    Method::Get,
                    &format!("{mount}/data/{path}"),
                    session_token,
                    None,
                    "/data/data",
                )
                .await?;
            Ok(Issued {
                fields: env_fields(profile, r.data),
                credential: None,
                renewable: None,
            })
        }
        ProfileKind::Token { policies, num_uses } => {
            let body = json!({
                "policies": policies,
                "ttl": secs,
                "explicit_max_ttl": secs,
                "num_uses": num_uses,
                "renewable": false,
                "display_name": format!("keyward-{name}"),
                "meta": {"keyward_session": session, "profile": name},
            });
            let info = vault
                .auth_call("auth/token/create", Some(session_token), &body)
                .await?;
            let expires = (now_unix() + info.lease_duration).min(deadline);
            Ok(Issued {
                fields: env_fields(profile, vec![("token".to_owned(), info.client_token)]),
                credential: Some(Credential::Token {
                    profile: name,
                    accessor: info.accessor,
                    expires,
                }),
                renewable: None,
            })
        }
        ProfileKind::Pki {
            mount,
            role,
            common_name,
        } => {
            let body = json!({"common_name": common_name, "ttl": secs});
            let r = vault
                .secret_call(
                    Method::Post,
                    &format!("{mount}/issue/{role}"),
                    session_token,
                    Some(&body),
                    "/data",
                )
                .await?;
            let serial = r
                .meta
                .get("serial_number")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| VaultError::Malformed {
                    path: format!("{mount}/issue/{role}"),
                    what: "no serial_number".into(),
                })?;
            let expires = match r.meta.get("expiration") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .unwrap_or(now_unix() + ttl.as_secs());
            let data = r
                .data
                .into_iter()
                .filter(|(k, _)| k != "expiration")
                .collect();
            Ok(Issued {
                fields: env_fields(profile, data),
                credential: Some(Credential::Cert {
                    profile: name,
                    mount: mount.clone(),
                    serial,
                    expires,
                }),
                renewable: None,
            })
        }
    }
}

fn leased(profile: &Profile, r: crate::vault::SecretResponse, deadline: u64) -> Issued {
    let credential = (!r.lease_id.is_empty()).then(|| Credential::Lease {
        profile: profile.name.clone(),
        lease_id: r.lease_id.clone(),
        // A lease cannot outlive the session token it was created under.
        expires: (now_unix() + r.lease_duration).min(deadline),
    });
    let renewable = (r.renewable && !r.lease_id.is_empty())
        .then(|| (r.lease_id.clone(), Duration::from_secs(r.lease_duration)));
    Issued {
        fields: env_fields(profile, r.data),
        credential,
        renewable,
    }
}

/// Revokes one credential with the agent token and verifies it is gone.
pub async fn revoke(
    vault: &VaultClient,
    token: &Secret<String>,
    cred: &Credential,
) -> Result<(), VaultError> {
    match cred {
        Credential::Lease { lease_id, .. } => {
            // `sync`: wait for the backend (e.g. the DROP ROLE) so its failure is seen here.
            let body = json!({"lease_id": lease_id, "sync": true});
            vault
                .request(Method::Post, "sys/leases/revoke", Some(token), Some(&body))
                .await?;
            let lookup = json!({"lease_id": lease_id});
            match vault
                .request(
                    Method::Post,
                    "sys/leases/lookup",
                    Some(token),
                    Some(&lookup),
                )
                .await
            {
                Err(e) if e.is_gone() => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Err(VaultError::Malformed {
                    path: "sys/leases/lookup".into(),
                    what: "lease still present after revocation".into(),
                }),
            }
        }
        Credential::Token { accessor, .. } => {
            let body = json!({"accessor": accessor});
            match vault
                .request(
                    Method::Post,
                    "auth/token/revoke-accessor",
                    Some(token),
                    Some(&body),
                )
                .await
            {
                Err(e) if e.is_gone() => return Ok(()),
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            match vault
                .request(
                    Method::Post,
                    "auth/token/lookup-accessor",
                    Some(token),
                    Some(&body),
                )
                .await
            {
                Err(e) if e.is_gone() => Ok(()),
                Err(e) => Err(e),
                Ok(_) => Err(VaultError::Malformed {
                    path: "auth/token/lookup-accessor".into(),
                    what: "token still valid after revocation".into(),
                }),
            }
        }
        Credential::Cert { mount, serial, .. } => {
            let body = json!({"serial_number": serial});
            match vault
                .request(
                    Method::Post,
                    &format!("{mount}/revoke"),
                    Some(token),
                    Some(&body),
                )
                .await
            {
                Ok(_) => {}
                // An expired certificate cannot be used and need not be revoked.
                Err(VaultError::Rejected { message, .. }) if message.contains("expired") => {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            let path = format!("{mount}/cert/{serial}");
            let v = vault.request(Method::Get, &path, Some(token), None).await?;
            let revoked_at = v
                .as_ref()
                .and_then(|v| v.pointer("/data/revocation_time"))
                .and_then(Value::as_i64);
            if revoked_at.is_some_and(|t| t > 0) {
                Ok(())
            } else {
                Err(VaultError::Malformed {
                    path,
                    what: "certificate not marked revoked".into(),
                })
            }
        }
    }
}

/// Renews a lease by `increment`; returns the new duration.
pub async fn renew(
    vault: &VaultClient,
    token: &Secret<String>,
    lease_id: &str,
    increment: Duration,
) -> Result<Duration, VaultError> {
    let body = json!({"lease_id": lease_id, "increment": increment.as_secs()});
    let v = vault
        .request(Method::Post, "sys/leases/renew", Some(token), Some(&body))
        .await?;
    Ok(Duration::from_secs(
        v.and_then(|v| v.get("lease_duration").and_then(Value::as_u64))
            .unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(uids: &[u32], gids: &[u32], claims: &[(&str, &str)]) -> Allow {
        Allow {
            uids: uids.iter().copied().collect(),
            gids: gids.iter().copied().collect(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), [(*v).to_owned()].into()))
                .collect(),
        }
    }

    #[test]
    fn allow_list_table() {
        type Case<'a> = (Allow, &'a [u32], Option<&'a BTreeMap<String, String>>, bool);
        let me = Caller {
            uid: 1000,
            gid: 100,
            pid: 1,
        };
        let claims: BTreeMap<String, String> =
            [("project_path".to_owned(), "g/app".to_owned())].into();
        let cases: &[Case<'_>] = &[
            (allow(&[1000], &[], &[]), &[], None, true),
            (allow(&[1], &[], &[]), &[], None, false),
            (allow(&[], &[100], &[]), &[], None, true),
            (allow(&[], &[7], &[]), &[7], None, true),
            (
                allow(&[1000], &[], &[("project_path", "g/app")]),
                &[],
                None,
                false,
            ),
            (
                allow(&[1000], &[], &[("project_path", "g/app")]),
                &[],
                Some(&claims),
                true,
            ),
            (
                allow(&[1000], &[], &[("project_path", "g/other")]),
                &[],
                Some(&claims),
                false,
            ),
        ];
        for (i, (a, groups, c, ok)) in cases.iter().enumerate() {
            assert_eq!(check_allowed(a, &me, groups, *c).is_ok(), *ok, "case {i}");
        }
    }
}
