//! Walking an image by digest: index → manifests (filtered by platform) → config and layers,
//! over any [`BlobStore`] (an OCI layout, a registry, a `docker save`/OCI tarball).

use super::ImageScan;
use super::assemble::{self, Image};
use super::digest::Digest;
use super::layer::LayerScan;
use super::manifest::{ImageConfig, Manifest};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::sync::Arc;

/// Largest manifest, index or config read (they are JSON documents of a few KiB).
pub const MAX_DOCUMENT: u64 = 16 << 20;

/// Where the blobs of an image come from.
pub trait BlobStore<'a> {
    /// A manifest or index by digest (bytes as stored; verified by the caller).
    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>>;
    /// A small blob (a config) by digest (verified by the caller).
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>>;
    /// Opens a layer blob to stream it.
    fn open_layer(&self, digest: &Digest) -> Result<Box<dyn Read + 'a>>;
    /// The scan of a layer; by default from the run's cache or by streaming
    /// [`BlobStore::open_layer`].
    fn layer(
        &self,
        ctx: &ImageScan<'a>,
        what: &str,
        blob: &Digest,
        diff_id: Option<&Digest>,
    ) -> Arc<LayerScan> {
        ctx.layer(what, Some(blob), diff_id, || self.open_layer(blob))
    }
}

/// Scans the image (or every selected image of the index) whose manifest is `bytes`.
///
/// # Errors
/// A document that is not a manifest or index, or a config that cannot be read; a broken
/// child of an index is reported and its siblings are still scanned.
pub fn walk<'a>(
    ctx: &ImageScan<'a>,
    store: &dyn BlobStore<'a>,
    target: &str,
    bytes: &[u8],
    platform: Option<&str>,
) -> Result<()> {
    let m: Manifest = serde_json::from_slice(bytes).context("parsing the image manifest")?;
    if m.is_index() {
        if platform.is_some() {
            bail!("an index inside an index entry is not supported");
        }
        let mut selected = 0;
        for d in m.manifests.iter().flatten() {
            let p = d.platform.clone().unwrap_or_default();
            // Build attestations (in-toto documents, not file systems) carry unknown/unknown.
            if p.os == "unknown" {
                tracing::debug!(digest = d.digest, "Skipping an attestation manifest.");
                continue;
            }
            let wanted = &ctx.opts.platforms;
            if !wanted.is_empty() && !wanted.iter().any(|w| p.matches(w)) {
                continue;
            }
            selected += 1;
            let what = format!("{target} ({})", p.name());
            let r = (|| -> Result<()> {
                let digest = Digest::parse(&d.digest).map_err(anyhow::Error::msg)?;
                let child = store.manifest(&digest)?;
                check(ctx, &what, "manifest", &digest, &child);
                walk(ctx, store, target, &child, Some(&p.name()))
            })();
            if let Err(e) = r {
                ctx.scan.error(&what, &format!("{e:#}"));
            }
        }
        if selected == 0 {
            bail!(
                "no manifest in the index matches --platform {:?}",
                ctx.opts.platforms
            );
        }
        return Ok(());
    }
    let (Some(config), Some(layers)) = (&m.config, &m.layers) else {
        bail!("the manifest has no config or no layers");
    };
    let config_digest = Digest::parse(&config.digest).map_err(anyhow::Error::msg)?;
    let config_bytes = store
        .blob(&config_digest)
        .context("reading the image config")?;
    check(ctx, target, "config", &config_digest, &config_bytes);
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).context("parsing the image config")?;
    let diff_ids = diff_ids(ctx, target, &config);
    let mut scanned = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let what = format!("{target}: layer {i} {}", l.digest);
        let blob = match Digest::parse(&l.digest) {
            Ok(d) => d,
            Err(e) => {
                ctx.scan.error(&what, &e);
                continue;
            }
        };
        let diff_id = diff_ids.get(i).cloned().flatten();
        let layer = store.layer(ctx, &what, &blob, diff_id.as_ref());
        let id = diff_id
            .or_else(|| layer.digests.as_ref().map(|d| d.diff_id.clone()))
            .unwrap_or(blob);
        scanned.push((id, layer));
    }
    if !diff_ids.is_empty() && diff_ids.len() != layers.len() {
        ctx.integrity_error(
            target,
            &format!(
                "the manifest has {} layers, the config's rootfs {}",
                layers.len(),
                diff_ids.len()
            ),
        );
    }
    let image = Image {
        name: image_name(target, platform, &config_digest),
        config,
        layers: scanned,
    };
    assemble::report(ctx.scan, &image);
    Ok(())
}

/// The config's diff_ids, parsed (a malformed one is reported and left `None`).
pub fn diff_ids(ctx: &ImageScan<'_>, target: &str, config: &ImageConfig) -> Vec<Option<Digest>> {
    config
        .rootfs
        .iter()
        .flat_map(|r| &r.diff_ids)
        .map(|s| {
            Digest::parse(s)
                .map_err(|e| ctx.scan.error(target, &format!("config rootfs: {e}")))
                .ok()
        })
        .collect()
}

/// What findings' `image` says: the target, the platform when it came from an index, and the
/// image id (the config digest, as `docker images --digests` shows it).
pub fn image_name(target: &str, platform: Option<&str>, config: &Digest) -> String {
    match platform {
        Some(p) => format!("{target} ({p}) {config}"),
        None => format!("{target} {config}"),
    }
}

/// Verifies a document against its digest; a mismatch is an integrity error.
pub fn check(ctx: &ImageScan<'_>, what: &str, kind: &str, digest: &Digest, bytes: &[u8]) -> bool {
    let actual = Digest::of(bytes);
    if actual == *digest {
        return true;
    }
    ctx.integrity_error(
        what,
        &format!("{kind} digest mismatch: expected {digest}, read {actual}"),
    );
    false
}

/// Reads at most [`MAX_DOCUMENT`] bytes.
///
/// # Errors
/// A read error, or a document over the limit.
pub fn read_document(mut r: impl Read) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut r).take(MAX_DOCUMENT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_DOCUMENT {
        bail!("document larger than {MAX_DOCUMENT} bytes");
    }
    Ok(buf)
}
