//! `docker://HOST/REPO:TAG|@sha256:…`: an image pulled blob by blob over the OCI distribution
//! API — anonymous, basic and bearer-token auth, `--insecure` for plain-HTTP registries.
//!
//! NOTE: ureq (blocking) rather than hyper: a scan is a sequence of GETs whose bodies feed a
//! blocking tar reader, so an async client would need a runtime and a channel back into
//! blocking code for nothing. ureq runs on rustls (ring), does not decompress bodies (the
//! `gzip` feature is off, so blob digests are of the bytes as stored), and does not forward
//! `Authorization` across hosts on redirects (registries redirect blobs to object stores).

use super::ImageScan;
use super::digest::Digest;
use super::oci::{self, BlobStore};
use super::percent_encode;
use super::target::RegistryRef;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use keyward_detectors::Secret;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

/// Registry access options.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Credentials from flags; when absent, from the Docker config file.
    pub credentials: Option<Credentials>,
    /// The Docker config file (default `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`).
    pub authfile: Option<PathBuf>,
}

/// A user name and password (or identity token).
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token; never printed.
    pub password: Secret<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Accepted manifest media types, most specific first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Scans `r` from its registry.
///
/// # Errors
/// The registry cannot be reached, refuses the credentials, or has no such manifest.
pub fn scan(ctx: &ImageScan<'_>, r: &RegistryRef, target: &str) -> Result<()> {
    let opts = &ctx.opts.registry;
    let credentials = match &opts.credentials {
        Some(c) => Some(c.clone()),
        None => from_docker_config(opts.authfile.as_ref(), &r.host)?,
    };
    let client = Client::new(r, opts.insecure, credentials);
    let bytes = client.manifest(&r.reference)?;
    if let Ok(d) = Digest::parse(&r.reference) {
        oci::check(ctx, target, "manifest", &d, &bytes);
    }
    oci::walk(ctx, &client, target, &bytes, None)
}

/// A client for one repository.
struct Client {
    agent: ureq::Agent,
    /// `https://host` (or `http://` with `--insecure`).
    base: String,
    repo: String,
    credentials: Option<Credentials>,
    /// The `Authorization` value that worked (a bearer token, or basic credentials).
    auth: Mutex<Option<Secret<String>>>,
}

impl Client {
    fn new(r: &RegistryRef, insecure: bool, credentials: Option<Credentials>) -> Client {
        let host = if r.host == "docker.io" {
            "registry-1.docker.io"
        } else {
            &r.host
        };
        let scheme = if insecure { "http" } else { "https" };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent("keyward")
            .build()
            .into();
        Client {
            agent,
            base: format!("{scheme}://{host}"),
            repo: r.repo.clone(),
            credentials,
            auth: Mutex::new(None),
        }
    }

    fn manifest(&self, reference: &str) -> Result<Vec<u8>> {
        let path = format!("/v2/{}/manifests/{reference}", self.repo);
        let resp = self.get(&path, Some(ACCEPT))?;
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = oci::read_document(resp.into_body().into_reader())
            .with_context(|| format!("reading manifest {reference}"))?;
        if let Some(h) = header_digest.and_then(|h| Digest::parse(&h).ok()) {
            let actual = Digest::of(&bytes);
            if h != actual {
                bail!("manifest {reference}: the registry says {h}, the bytes are {actual}");
            }
        }
        Ok(bytes)
    }

    /// A GET that authenticates on a 401 challenge and retries once; any status but 2xx is an
    /// error.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let resp = self.authorized("GET", &url, || {
            let req = self.agent.get(&url);
            match accept {
                Some(a) => req.header("Accept", a),
                None => req,
            }
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let mut body = resp.into_body();
            let text = body
                .with_config()
                .limit(64 << 10)
                .read_to_string()
                .unwrap_or_default();
            bail!("GET {url}: HTTP {status}: {}", text.trim());
        }
        Ok(resp)
    }

    /// Sends the request `make` builds, with the token we hold; on a 401 challenge,
    /// authenticates and sends it once more. Any other status is the caller's to judge.
    fn authorized(
        &self,
        verb: &str,
        url: &str,
        make: impl Fn() -> ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        for attempt in 0..2 {
            let mut req = make();
            let auth = self.lock_auth().clone();
            if let Some(a) = &auth {
                req = req.header("Authorization", a.expose());
            }
            let resp = req.call().map_err(|e| anyhow!("{verb} {url}: {e}"))?;
            if resp.status().as_u16() == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                self.authenticate(&challenge)
                    .with_context(|| format!("authenticating to {}", self.base))?;
                continue;
            }
            return Ok(resp);
        }
        bail!("{verb} {url}: still unauthorized after authenticating")
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, Option<Secret<String>>> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers a `WWW-Authenticate` challenge: basic with the credentials, or a bearer token
    /// from the realm (with the credentials when there are some, anonymous otherwise).
    fn authenticate(&self, challenge: &str) -> Result<()> {
        let (scheme, params) = parse_challenge(challenge);
        let value = if scheme.eq_ignore_ascii_case("basic") {
            let c = self.credentials.as_ref().ok_or_else(|| {
                anyhow!("the registry wants credentials (--username/--password or docker login)")
            })?;
            c.basic()
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params
                .get("realm")
                .ok_or_else(|| anyhow!("bearer challenge without a realm"))?;
            let scope = params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", self.repo));
            let mut url = format!("{realm}?scope={}", percent_encode(&scope));
            if let Some(s) = params.get("service") {
                url = format!("{url}&service={}", percent_encode(s));
            }
            let mut req = self.agent.get(&url);
            if let Some(c) = &self.credentials {
                req = req.header("Authorization", c.basic());
            }
            let resp = req.call().map_err(|e| anyhow!("GET {realm}: {e}"))?;
            let status = resp.status().as_u16();
            if status != 200 {
                bail!("the token service {realm} answered HTTP {status}");
            }
            let v: serde_json::Value =
                serde_json::from_reader(resp.into_body().into_reader().take(1 << 20))
                    .context("parsing the token response")?;
            let token = v["token"]
                .as_str()
                .or_else(|| v["access_token"].as_str())
                .ok_or_else(|| anyhow!("the token response has no token"))?;
            format!("Bearer {token}")
        } else {
            bail!("unsupported authentication challenge {scheme:?}");
        };
        *self.lock_auth() = Some(Secret::new(value));
        Ok(())
    }
}

impl<'a> BlobStore<'a> for Client {
    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        Client::manifest(self, digest.as_str())
    }
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let resp = self.get(&format!("/v2/{}/blobs/{digest}", self.repo), None)?;
        oci::read_document(resp.into_body().into_reader())
    }
    fn open_layer(&self, digest: &Digest) -> Result<Box<dyn Read + 'a>> {
        let resp = self.get(&format!("/v2/{}/blobs/{digest}", self.repo), None)?;
        Ok(Box::new(resp.into_body().into_reader()))
    }
}

/// One repository on a registry: its tags, and the manifest digest each points at (what the
/// daemon's registry watcher polls). Authenticates like a scan: basic, or a bearer token from
/// the realm the registry names, kept for the following requests.
pub struct Repository {
    client: Client,
    /// `n` of `tags/list`; `None`: the registry's default page.
    page_size: Option<u32>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("base", &self.client.base)
            .field("repo", &self.client.repo)
            .field("credentials", &self.client.credentials)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// `repo` (`team/app`) on `host` (`host[:port]`; `docker.io` is Docker Hub), over plain
    /// HTTP when `insecure`; anonymous unless `credentials` are given.
    pub fn new(
        host: &str,
        repo: &str,
        insecure: bool,
        credentials: Option<Credentials>,
    ) -> Repository {
        let r = RegistryRef {
            host: host.to_owned(),
            repo: repo.to_owned(),
            reference: String::new(),
        };
        Repository {
            client: Client::new(&r, insecure, credentials),
            page_size: None,
        }
    }

    /// Asks for `n` tags a page. Pages are followed either way; this only sets their size.
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Repository {
        self.page_size = Some(n);
        self
    }

    /// Every tag, in the registry's order: `GET /v2/<repo>/tags/list`, then each
    /// `Link: <…>; rel="next"` page.
    ///
    /// # Errors
    /// The registry cannot be reached, refuses the credentials, has no such repository, or
    /// sends a next page on another host or one already read.
    pub fn tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut path = format!("/v2/{}/tags/list", self.client.repo);
        if let Some(n) = self.page_size {
            path = format!("{path}?n={n}");
        }
        let mut seen = std::collections::HashSet::new();
        let mut tags = Vec::new();
        loop {
            let resp = self.client.get(&path, Some("application/json"))?;
            let next = resp
                .headers()
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let bytes = oci::read_document(resp.into_body().into_reader())
                .with_context(|| format!("reading {path}"))?;
            let page: Page = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing the tag list {path}"))?;
            tags.extend(page.tags.unwrap_or_default());
            seen.insert(path);
            let Some(next) = next else {
                return Ok(tags);
            };
            path = match next.strip_prefix(&self.client.base) {
                Some(p) if p.starts_with('/') => p.to_owned(),
                _ if next.starts_with('/') => next,
                _ => bail!(
                    "{}: the next page of tags is on another host: {next}",
                    self.client.base
                ),
            };
            if seen.contains(&path) {
                bail!("{}: the tag list's pages loop at {path}", self.client.base);
            }
        }
    }

    /// The digest of the manifest `reference` (a tag or digest) points at: `HEAD
    /// /v2/<repo>/manifests/<reference>`'s `Docker-Content-Digest` (asking for every manifest
    /// and index type, so the stored one is what is digested, not a conversion), or, from a
    /// registry that sends none, the digest of the manifest's bytes. `None` when there is no
    /// such manifest.
    ///
    /// NOTE: HEAD first: it transfers nothing, and Docker Hub does not count it against the
    /// pull rate limit.
    ///
    /// # Errors
    /// The registry cannot be reached, refuses the credentials, or answers with an error.
    pub fn manifest_digest(&self, reference: &str) -> Result<Option<Digest>> {
        let path = format!("/v2/{}/manifests/{reference}", self.client.repo);
        let resp = self.client.head(&path, ACCEPT)?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            bail!("HEAD {}{path}: HTTP {status}", self.client.base);
        }
        let header = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        match header {
            Some(d) => Ok(Some(d)),
            None => Ok(Some(Digest::of(&self.client.manifest(reference)?))),
        }
    }
}

impl Client {
    /// A HEAD that authenticates on a 401 challenge and retries once, like [`Client::get`];
    /// any other status is returned for the caller to judge (a 404 is an answer here).
    fn head(&self, path: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        self.authorized("HEAD", &url, || {
            self.agent.head(&url).header("Accept", accept)
        })
    }
}

/// The target of a `Link` header's `rel="next"` entry: `</v2/a/tags/list?last=x&n=1>;
/// rel="next"` → `/v2/a/tags/list?last=x&n=1`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
            })
            .then(|| target.to_owned())
    })
}

/// `Bearer realm="…",service="…",scope="…"` → (`Bearer`, params). Values may be quoted and
/// hold commas.
fn parse_challenge(s: &str) -> (String, BTreeMap<String, String>) {
    let s = s.trim();
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|&c| c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    (scheme.to_owned(), params)
}

/// Credentials for `host` from the Docker config file (`auths.<host>.auth`, base64 of
/// `user:password`). Credential helpers are not run.
fn from_docker_config(path: Option<&PathBuf>, host: &str) -> Result<Option<Credentials>> {
    let path = match path {
        Some(p) => p.clone(),
        None => match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".docker").join("config.json"),
                None => return Ok(None),
            },
        },
    };
    let text = match fs_err::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(credentials_for(&v, host))
}

fn credentials_for(config: &serde_json::Value, host: &str) -> Option<Credentials> {
    let auths = config["auths"].as_object()?;
    let want = if host == "docker.io" {
        "index.docker.io"
    } else {
        host
    };
    let (_, entry) = auths.iter().find(|(k, _)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next() == Some(want)
    })?;
    if let Some(auth) = entry["auth"].as_str() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        return Some(Credentials {
            username: u.to_owned(),
            password: Secret::new(p.to_owned()),
        });
    }
    Some(Credentials {
        username: entry["username"].as_str()?.to_owned(),
        password: Secret::new(entry["password"].as_str()?.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (s.as_str(), p["realm"].as_str()),
            ("Basic", "Registry Realm")
        );
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/b/tags/list?last=t1&n=1>; rel="next""#).as_deref(),
            Some("/v2/a/b/tags/list?last=t1&n=1")
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/a/tags/list?n=2&last=x>; rel="prev", </v2/a/tags/list?n=2&last=y>; rel="next""#)
                .as_deref(),
            Some("/v2/a/tags/list?n=2&last=y")
        );
        assert_eq!(next_link(r#"</v2/a/tags/list>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn docker_config_credentials() {
        let v = serde_json::json!({"auths": {
            "127.0.0.1:5000": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p:w")},
            "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("hub:x")}
        }});
        let c = credentials_for(&v, "127.0.0.1:5000").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose().as_str()),
            ("u", "p:w")
        );
        assert_eq!(credentials_for(&v, "docker.io").unwrap().username, "hub");
        assert!(credentials_for(&v, "other:1").is_none());
        assert!(!format!("{c:?}").contains("p:w"));
    }
}
