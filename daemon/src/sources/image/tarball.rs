//! A tarball of an image, read in one pass: `docker save` output (`manifest.json`, legacy or
//! OCI-shaped) and `oci-archive:` (an OCI layout as a tar). The Docker engine's
//! `GET /images/{name}/get` is the same stream, so `docker-daemon:` ends here too.
//!
//! The index documents may come after the layers (`manifest.json` sorts after the layer
//! directories), so each layer is scanned when it streams past, keyed by its member path, and
//! the image is assembled at the end. Only JSON documents and per-layer results are kept.

use super::ImageScan;
use super::digest::Digest;
use super::layer::LayerScan;
use super::manifest::{ImageConfig, Manifest, SaveEntry};
use super::oci::{self, BlobStore};
use super::{assemble, layout};
use crate::sources::archive;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

/// What one pass over the tarball kept.
#[derive(Default)]
struct Tarball {
    /// Small JSON documents by member path.
    docs: HashMap<String, Vec<u8>>,
    /// Scanned layers by member path.
    layers: HashMap<String, Arc<LayerScan>>,
}

impl Tarball {
    fn doc(&self, path: &str) -> Result<&[u8]> {
        self.docs
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow!("{path} is not in the archive (truncated?)"))
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

impl<'a> BlobStore<'a> for Tarball {
    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.blob(digest)
    }
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        Ok(self.doc(&blob_path(digest))?.to_vec())
    }
    fn open_layer(&self, digest: &Digest) -> Result<Box<dyn Read + 'a>> {
        bail!("{} was not in the archive (truncated?)", blob_path(digest))
    }
    fn layer(
        &self,
        ctx: &ImageScan<'a>,
        what: &str,
        blob: &Digest,
        diff_id: Option<&Digest>,
    ) -> Arc<LayerScan> {
        if let Some(l) = self.layers.get(&blob_path(blob)) {
            ctx.verify(what, l, Some(blob), diff_id);
            l.clone()
        } else {
            ctx.scan
                .error(what, &"layer not found in the archive (truncated?)");
            Arc::new(LayerScan::default())
        }
    }
}

/// Scans every image in the tarball `input`.
///
/// # Errors
/// Neither `manifest.json` nor `index.json` could be read; a broken layer or a tarball cut
/// short is reported and what was read is still scanned.
pub fn scan(ctx: &ImageScan<'_>, input: impl Read, target: &str) -> Result<()> {
    let mut t = Tarball::default();
    if let Err(e) = read(ctx, input, target, &mut t) {
        ctx.scan.error(target, &format!("{e:#}"));
    }
    if let Some(m) = t.docs.get("manifest.json") {
        let entries: Vec<SaveEntry> = serde_json::from_slice(m).context("parsing manifest.json")?;
        for e in &entries {
            if let Err(err) = save_entry(ctx, &t, e, target) {
                ctx.scan
                    .error(&format!("{target} {}", e.config), &format!("{err:#}"));
            }
        }
        return Ok(());
    }
    if let Some(index) = t.docs.get("index.json") {
        let index: Manifest = serde_json::from_slice(index).context("parsing index.json")?;
        for d in index.manifests.iter().flatten() {
            let r = (|| -> Result<()> {
                let digest = Digest::parse(&d.digest).map_err(anyhow::Error::msg)?;
                let bytes = t.manifest(&digest)?;
                oci::check(ctx, target, "manifest", &digest, &bytes);
                let platform = d.platform.as_ref().map(super::manifest::Platform::name);
                oci::walk(ctx, &t, target, &bytes, platform.as_deref())
            })();
            if let Err(e) = r {
                let tag = d.annotations.get(layout::REF_NAME).unwrap_or(&d.digest);
                ctx.scan
                    .error(&format!("{target} {tag}"), &format!("{e:#}"));
            }
        }
        return Ok(());
    }
    bail!("{target}: neither manifest.json nor index.json in the archive; not an image?")
}

/// One pass: keep JSON documents, scan layers.
fn read(ctx: &ImageScan<'_>, input: impl Read, target: &str, t: &mut Tarball) -> Result<()> {
    let mut ar = tar::Archive::new(input);
    for entry in ar.entries().context("reading the image tarball")? {
        let mut e = entry.context("reading the image tarball")?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let path = raw.trim_start_matches("./").to_owned();
        let size = e.size();
        let mut head = vec![0u8; 512.min(size as usize)];
        e.read_exact(&mut head)
            .with_context(|| format!("reading {path}"))?;
        let first = head.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') || first == Some(&b'[') {
            if size > oci::MAX_DOCUMENT {
                ctx.scan.skipped(&path, "JSON document over the size limit");
                continue;
            }
            let mut doc = head;
            e.read_to_end(&mut doc)
                .with_context(|| format!("reading {path}"))?;
            t.docs.insert(path, doc);
            continue;
        }
        // A layer: compressed, or a tar (an empty layer is just the two zero end blocks).
        let is_layer = archive::kind(&head).is_some()
            || (size >= 1024 && head.iter().all(|&b| b == 0))
            || path.ends_with("/layer.tar");
        if !is_layer {
            continue;
        }
        let what = format!("{target}: {path}");
        let known = path
            .strip_prefix("blobs/sha256/")
            .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
            .and_then(|d| ctx.cache.get(&d));
        let layer = if let Some(l) = known {
            l
        } else {
            let l = Arc::new(super::layer::scan_layer(
                ctx.scan,
                std::io::Cursor::new(head).chain(&mut e),
                &what,
                &ctx.opts.layer,
            ));
            ctx.cache.insert(&l);
            l
        };
        t.layers.insert(path, layer);
    }
    Ok(())
}

/// One image of a `docker save` `manifest.json`.
fn save_entry(ctx: &ImageScan<'_>, t: &Tarball, e: &SaveEntry, target: &str) -> Result<()> {
    let config_bytes = t.doc(&e.config)?;
    // Legacy archives name the config `<hex>.json`, newer ones `blobs/sha256/<hex>`; either
    // way the name is its digest (the image id).
    let hex = e
        .config
        .rsplit('/')
        .next()
        .unwrap_or(&e.config)
        .trim_end_matches(".json");
    let config_digest = match Digest::parse(&format!("sha256:{hex}")) {
        Ok(d) => {
            oci::check(ctx, target, "config", &d, config_bytes);
            d
        }
        Err(_) => Digest::of(config_bytes),
    };
    let config: ImageConfig =
        serde_json::from_slice(config_bytes).context("parsing the image config")?;
    let diff_ids = oci::diff_ids(ctx, target, &config);
    if diff_ids.len() != e.layers.len() {
        ctx.integrity_error(
            target,
            &format!(
                "manifest.json lists {} layers, the config's rootfs {}",
                e.layers.len(),
                diff_ids.len()
            ),
        );
    }
    let mut layers = Vec::new();
    for (i, path) in e.layers.iter().enumerate() {
        let diff_id = diff_ids.get(i).cloned().flatten();
        let what = format!("{target}: layer {i} {path}");
        let layer = if let Some(l) = t.layers.get(path) {
            let blob = path
                .strip_prefix("blobs/sha256/")
                .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
            ctx.verify(&what, l, blob.as_ref(), diff_id.as_ref());
            l.clone()
        } else {
            ctx.scan
                .error(&what, &"layer not found in the archive (truncated?)");
            Arc::new(LayerScan::default())
        };
        let id = diff_id
            .or_else(|| layer.digests.as_ref().map(|d| d.diff_id.clone()))
            .unwrap_or_else(|| Digest::of(path.as_bytes()));
        layers.push((id, layer));
    }
    let image = assemble::Image {
        name: oci::image_name(target, None, &config_digest),
        config,
        layers,
    };
    assemble::report(ctx.scan, &image);
    Ok(())
}
