//! `TARGET` of `keyward scan image`, in skopeo's transport syntax.

use std::path::PathBuf;

/// Where an image is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `docker-archive:FILE`: a `docker save` tarball.
    DockerArchive(PathBuf),
    /// `oci:DIR[:TAG]`: an OCI image layout directory.
    OciDir {
        /// The layout.
        dir: PathBuf,
        /// Only manifests with this `org.opencontainers.image.ref.name`.
        tag: Option<String>,
    },
    /// `oci-archive:FILE`: an OCI layout as a tar.
    OciArchive(PathBuf),
    /// `docker-daemon:IMAGE[:TAG]`: the local Docker engine.
    Daemon(String),
    /// `docker://HOST/REPO:TAG` or `@sha256:…`.
    Registry(RegistryRef),
}

/// A repository and tag or digest on a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]` as written (Docker Hub is `docker.io`).
    pub host: String,
    /// `library/alpine`, `team/app`.
    pub repo: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl RegistryRef {
    /// Parses `HOST/REPO[:TAG|@DIGEST]`; a name without a registry host is on Docker Hub.
    ///
    /// # Errors
    /// An empty name or repository.
    pub fn parse(s: &str) -> Result<RegistryRef, String> {
        let (name, reference) = if let Some((n, d)) = s.split_once('@') {
            (n, d.to_owned())
        } else {
            match s.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_owned()),
                _ => (s, "latest".to_owned()),
            }
        };
        let (host, repo) = match name.split_once('/') {
            Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_owned(), r.to_owned())
            }
            Some(_) => ("docker.io".to_owned(), name.to_owned()),
            None => ("docker.io".to_owned(), format!("library/{name}")),
        };
        if repo.is_empty() || reference.is_empty() {
            return Err(format!("{s:?} is not HOST/REPO[:TAG|@sha256:DIGEST]"));
        }
        Ok(RegistryRef {
            host,
            repo,
            reference,
        })
    }
}

impl Target {
    /// Parses `transport:rest`.
    ///
    /// # Errors
    /// An unknown transport or a malformed reference (a usage error).
    pub fn parse(s: &str) -> Result<Target, String> {
        let Some((transport, rest)) = s.split_once(':') else {
            return Err(format!(
                "{s:?}: give a transport: docker-archive:FILE, oci:DIR[:TAG], oci-archive:FILE, \
                 docker-daemon:IMAGE[:TAG] or docker://HOST/REPO:TAG"
            ));
        };
        if rest.is_empty() {
            return Err(format!("{s:?}: nothing after {transport}:"));
        }
        Ok(match transport {
            "docker-archive" => Target::DockerArchive(PathBuf::from(rest)),
            "oci-archive" => Target::OciArchive(PathBuf::from(rest)),
            "oci" => {
                // DIR may itself hold a `:`; take the last `:` as the tag separator only when
                // the whole is not an existing directory.
                match rest.rsplit_once(':') {
                    Some((dir, tag))
                        if !std::path::Path::new(rest).is_dir() && !tag.contains('/') =>
                    {
                        Target::OciDir {
                            dir: PathBuf::from(dir),
                            tag: Some(tag.to_owned()),
                        }
                    }
                    _ => Target::OciDir {
                        dir: PathBuf::from(rest),
                        tag: None,
                    },
                }
            }
            "docker-daemon" => Target::Daemon(rest.to_owned()),
            "docker" => {
                let r = rest.strip_prefix("//").ok_or_else(|| {
                    format!("{s:?}: registry references are docker://HOST/REPO:TAG")
                })?;
                Target::Registry(RegistryRef::parse(r)?)
            }
            other => return Err(format!("{s:?}: unknown transport {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(
            Target::parse("docker-archive:/tmp/a.tar").unwrap(),
            Target::DockerArchive("/tmp/a.tar".into())
        );
        assert_eq!(
            Target::parse("oci:/nonexistent/lay:v1").unwrap(),
            Target::OciDir {
                dir: "/nonexistent/lay".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Target::parse("docker://127.0.0.1:5000/team/app:1.2").unwrap(),
            Target::Registry(RegistryRef {
                host: "127.0.0.1:5000".into(),
                repo: "team/app".into(),
                reference: "1.2".into()
            })
        );
        let r = RegistryRef::parse("localhost:5000/app@sha256:abc").unwrap();
        assert_eq!(
            (r.host.as_str(), r.reference.as_str()),
            ("localhost:5000", "sha256:abc")
        );
        let r = RegistryRef::parse("alpine").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.reference.as_str()),
            ("docker.io", "library/alpine", "latest")
        );
        assert!(Target::parse("nope:x").is_err());
        assert!(Target::parse("x.tar").is_err());
        assert!(Target::parse("docker:host/x").is_err());
    }
}
