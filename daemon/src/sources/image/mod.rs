//! `keyward scan image`: container images, every layer, the config and the history.
//!
//! - [`target`]: the `TARGET` syntax (skopeo transports).
//! - [`layer`]: one layer streamed once — decompressed, digested, scanned, its whiteouts noted.
//! - [`assemble`]: whiteouts applied across layers (`deleted`), attribution, the config scanned.
//! - [`oci`]: walking an index/manifest/config over any [`oci::BlobStore`].
//! - Transports: [`tarball`] (`docker-archive:`, `oci-archive:`, and the daemon's stream),
//!   [`layout`] (`oci:`), [`daemon`] (`docker-daemon:`), [`registry`] (`docker://`).
//! - [`LayerCache`]: each layer is scanned once per run, by digest.
//!
//! Nothing is written to disk: layers and nested archives are streamed or held in bounded
//! memory.

pub mod assemble;
pub mod daemon;
pub mod digest;
pub mod layer;
pub mod layout;
pub mod manifest;
pub mod oci;
pub mod registry;
pub mod tarball;
pub mod target;

use self::digest::Digest;
use self::layer::{LayerOptions, LayerScan};
use crate::error::UsageError;
use crate::scan::Scan;
use anyhow::Result;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
pub use target::Target;

/// Options of an image scan.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// How layers are scanned.
    pub layer: LayerOptions,
    /// Platforms to scan from a multi-platform index (`os/arch[/variant]`); empty: all.
    pub platforms: Vec<String>,
    /// Registry access.
    pub registry: registry::RegistryOptions,
    /// The Docker engine's address (`unix:///var/run/docker.sock`, `tcp://host:port`).
    pub docker_host: Option<String>,
}

/// Layer scans by digest (blob digest and diff_id both), so a layer shared by several images,
/// platforms or targets is scanned once in a run.
///
/// NOTE: in memory for now; the daemon will persist it keyed the same way (with the rule set's
/// fingerprint), which is why entries are keyed by content digest and hold no image data.
#[derive(Debug, Default)]
pub struct LayerCache {
    layers: Mutex<HashMap<Digest, Arc<LayerScan>>>,
}

impl LayerCache {
    /// A scan of the layer with this blob digest or diff_id.
    pub fn get(&self, digest: &Digest) -> Option<Arc<LayerScan>> {
        self.lock().get(digest).cloned()
    }

    /// Remembers a layer read to its end, under both its digests.
    pub fn insert(&self, layer: &Arc<LayerScan>) {
        if let Some(d) = &layer.digests {
            let mut map = self.lock();
            map.insert(d.blob.clone(), layer.clone());
            map.insert(d.diff_id.clone(), layer.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<LayerScan>>> {
        self.layers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One `scan image` run over one or more targets: the scan, the options, the layer cache, and
/// the integrity failures (digest mismatches) seen, which make the command fail.
pub struct ImageScan<'a> {
    /// The scan findings go to.
    pub scan: &'a Scan,
    /// Options.
    pub opts: &'a ImageOptions,
    /// Layers already scanned.
    pub cache: &'a LayerCache,
    integrity: Mutex<Vec<String>>,
}

impl<'a> ImageScan<'a> {
    /// A run.
    pub fn new(scan: &'a Scan, opts: &'a ImageOptions, cache: &'a LayerCache) -> Self {
        ImageScan {
            scan,
            opts,
            cache,
            integrity: Mutex::new(Vec::new()),
        }
    }

    /// Scans one target.
    ///
    /// # Errors
    /// The target cannot be opened at all (no such file, no such image, registry refused).
    /// Problems inside an image (a broken layer, a digest mismatch) are reported on the scan
    /// and the rest of the image is still scanned.
    pub fn target(&self, target: &str) -> Result<()> {
        let parsed = Target::parse(target).map_err(UsageError)?;
        match parsed {
            Target::DockerArchive(p) | Target::OciArchive(p) => {
                let file = fs_err::File::open(&p)?;
                tarball::scan(
                    self,
                    std::io::BufReader::with_capacity(1 << 20, file),
                    target,
                )
            }
            Target::OciDir { dir, tag } => layout::scan(self, &dir, tag.as_deref(), target),
            Target::Daemon(name) => daemon::scan(self, &name, target),
            Target::Registry(r) => registry::scan(self, &r, target),
        }
    }

    /// A digest mismatch or other tamper evidence: reported now, and the command fails at the
    /// end.
    pub fn integrity_error(&self, what: &str, msg: &str) {
        self.scan.error(what, &msg);
        self.integrity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{what}: {msg}"));
    }

    /// The integrity failures seen so far.
    pub fn integrity_errors(&self) -> Vec<String> {
        self.integrity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The scan of a layer: from the cache when a digest is known and was scanned, otherwise
    /// read from `open` and verified against `blob` and `diff_id` when they are given.
    pub fn layer(
        &self,
        what: &str,
        blob: Option<&Digest>,
        diff_id: Option<&Digest>,
        open: impl FnOnce() -> Result<Box<dyn Read + 'a>>,
    ) -> Arc<LayerScan> {
        for d in [diff_id, blob].into_iter().flatten() {
            if let Some(l) = self.cache.get(d) {
                tracing::debug!(layer = %d, "Layer already scanned in this run; reusing.");
                return l;
            }
        }
        let layer = match open() {
            Ok(r) => layer::scan_layer(self.scan, r, what, &self.opts.layer),
            Err(e) => {
                self.scan.error(what, &format!("{e:#}"));
                LayerScan::default()
            }
        };
        let layer = Arc::new(layer);
        self.verify(what, &layer, blob, diff_id);
        self.cache.insert(&layer);
        layer
    }

    /// Checks a scanned layer's digests against what the manifest and config say. A mismatch
    /// is an integrity error; a layer that broke off was reported already.
    pub fn verify(
        &self,
        what: &str,
        layer: &LayerScan,
        blob: Option<&Digest>,
        diff_id: Option<&Digest>,
    ) -> bool {
        let Some(d) = &layer.digests else {
            return false;
        };
        let mut ok = true;
        if let Some(b) = blob.filter(|b| **b != d.blob) {
            {
                self.integrity_error(
                    what,
                    &format!(
                        "digest mismatch: the manifest says {b}, the blob read is {}",
                        d.blob
                    ),
                );
                ok = false;
            }
        }
        if let Some(x) = diff_id.filter(|x| **x != d.diff_id) {
            {
                self.integrity_error(
                    what,
                    &format!(
                        "diff_id mismatch: the config says {x}, the uncompressed layer is {}",
                        d.diff_id
                    ),
                );
                ok = false;
            }
        }
        ok
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (`A-Za-z0-9-_.~`): image
/// names in Engine API paths (`/` and `:` too, as the engine expects) and registry token
/// query parameters.
pub(crate) fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}
