//! The JSON documents of an image: OCI index and manifest (and their Docker v2 twins, which
//! have the same shape), the image config, and `docker save`'s `manifest.json`.
//!
//! NOTE: hand-written serde structs rather than `oci-spec`: we read a handful of fields, must
//! accept both Docker and OCI media types, and must not reject an image because of a field a
//! newer spec added. Unknown fields are ignored on purpose (no `deny_unknown_fields`).

use serde::Deserialize;
use std::collections::BTreeMap;

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A pointer to a blob.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the blob.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// For index entries: the platform.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations (`org.opencontainers.image.ref.name` names a tag in an OCI layout).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// os/architecture/variant.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `v8`.
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Whether `want` (`os/arch` or `os/arch/variant`, or just `arch`) selects this platform.
    pub fn matches(&self, want: &str) -> bool {
        let parts: Vec<&str> = want.split('/').collect();
        match parts.as_slice() {
            [arch] => *arch == self.architecture,
            [os, arch] => *os == self.os && *arch == self.architecture,
            [os, arch, variant] => {
                *os == self.os
                    && *arch == self.architecture
                    && self.variant.as_deref() == Some(*variant)
            }
            _ => false,
        }
    }
}

/// An index (manifest list) or a manifest: which one is told by `manifests` vs `layers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Media type, when the document states it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Index: the manifests.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    /// Manifest: the config blob.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Manifest: the layers, base first.
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Whether this is an index / manifest list.
    pub fn is_index(&self) -> bool {
        self.manifests.is_some()
            || matches!(self.media_type.as_deref(), Some(OCI_INDEX | DOCKER_LIST))
    }
}

/// The image config: what is run, and how it was built.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `v8`.
    #[serde(default)]
    pub variant: Option<String>,
    /// When the image was built (RFC 3339), if the builder said.
    #[serde(default)]
    pub created: Option<String>,
    /// The runtime config.
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// The layers' uncompressed digests, base first.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    /// One entry per build step; those with `empty_layer` made no layer.
    #[serde(default)]
    pub history: Vec<History>,
}

/// `config` of an image config (capitalised keys, as Docker writes them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `KEY=value` lines.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// ONBUILD triggers.
    #[serde(default)]
    pub on_build: Option<Vec<String>>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// Uncompressed layer digests.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One build step.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct History {
    /// The Dockerfile line (RUN lines carry `|N ARG=value` for build args).
    #[serde(default)]
    pub created_by: Option<String>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
    /// The step made no layer (ENV, ARG, CMD …).
    #[serde(default)]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The platform the config states.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
        }
    }

    /// For each layer index, the index into `history` of the step that made it.
    pub fn layer_history(&self) -> Vec<usize> {
        self.history
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.empty_layer)
            .map(|(i, _)| i)
            .collect()
    }
}

/// One image in `docker save`'s `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SaveEntry {
    /// Path of the config in the archive.
    pub config: String,
    /// Tags.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars in the archive, base first.
    pub layers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching() {
        let p = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        };
        assert_eq!(p.name(), "linux/arm64/v8");
        assert!(p.matches("linux/arm64"));
        assert!(p.matches("arm64"));
        assert!(p.matches("linux/arm64/v8"));
        assert!(!p.matches("linux/amd64"));
    }

    #[test]
    fn history_to_layers() {
        let c: ImageConfig = serde_json::from_str(
            r#"{"history":[{"created_by":"a"},{"created_by":"ENV","empty_layer":true},{"created_by":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(c.layer_history(), [0, 2]);
    }
}
