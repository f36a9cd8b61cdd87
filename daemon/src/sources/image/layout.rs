//! `oci:DIR[:TAG]`: an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).

use super::ImageScan;
use super::digest::Digest;
use super::manifest::Manifest;
use super::oci::{self, BlobStore};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Annotation naming a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(d.hex())
    }
}

impl<'a> BlobStore<'a> for Layout {
    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.blob(digest)
    }
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        oci::read_document(fs_err::File::open(self.path(digest))?)
    }
    fn open_layer(&self, digest: &Digest) -> Result<Box<dyn Read + 'a>> {
        Ok(Box::new(fs_err::File::open(self.path(digest))?))
    }
}

/// Scans the images of the layout at `dir` (only those tagged `tag` when given).
///
/// # Errors
/// No `index.json`, or no manifest with that tag.
pub fn scan(ctx: &ImageScan<'_>, dir: &Path, tag: Option<&str>, target: &str) -> Result<()> {
    let index_path = dir.join("index.json");
    let index = oci::read_document(fs_err::File::open(&index_path)?)?;
    let index: Manifest = serde_json::from_slice(&index)
        .with_context(|| format!("parsing {}", index_path.display()))?;
    let store = Layout {
        dir: dir.to_owned(),
    };
    let mut selected = 0;
    for d in index.manifests.iter().flatten() {
        if tag.is_some_and(|t| d.annotations.get(REF_NAME).map(String::as_str) != Some(t)) {
            continue;
        }
        let platform = d.platform.as_ref().map(super::manifest::Platform::name);
        if let Some(p) = &d.platform {
            let wanted = &ctx.opts.platforms;
            if !wanted.is_empty() && !wanted.iter().any(|w| p.matches(w)) {
                continue;
            }
        }
        selected += 1;
        let r = (|| -> Result<()> {
            let digest = Digest::parse(&d.digest).map_err(anyhow::Error::msg)?;
            let bytes = store.manifest(&digest)?;
            oci::check(ctx, target, "manifest", &digest, &bytes);
            oci::walk(ctx, &store, target, &bytes, platform.as_deref())
        })();
        if let Err(e) = r {
            ctx.scan
                .error(&format!("{target} {}", d.digest), &format!("{e:#}"));
        }
    }
    if selected == 0 {
        match tag {
            Some(t) => bail!("{}: no manifest tagged {t:?}", dir.display()),
            None => bail!("{}: index.json lists no manifest", dir.display()),
        }
    }
    Ok(())
}
