//! From layers to an image: apply whiteouts to tell which findings a later layer deleted or
//! replaced, attribute each finding to its layer and build step, and scan the image config.

use super::digest::Digest;
use super::layer::{self, LayerScan};
use super::manifest::ImageConfig;
use crate::finding::Location;
use crate::scan::Scan;
use std::sync::Arc;

/// An image whose layers are scanned, ready to report.
pub struct Image {
    /// Name in findings' `image`: the target, the platform for an index entry, the image id.
    pub name: String,
    /// The parsed config.
    pub config: ImageConfig,
    /// Layers, base first, each with the digest reported for it (its diff_id).
    pub layers: Vec<(Digest, Arc<LayerScan>)>,
}

/// Records the findings of every layer of `image` (with `deleted` worked out from the layers
/// above) and of its config. Returns the number of findings recorded.
pub fn report(scan: &Scan, image: &Image) -> usize {
    let history = image.config.layer_history();
    let created_by = |i: usize| -> Option<String> {
        history
            .get(i)
            .and_then(|&h| image.config.history[h].created_by.clone())
    };
    let mut n = 0;
    for (i, (digest, layer)) in image.layers.iter().enumerate() {
        let above = &image.layers[i + 1..];
        for f in &layer.found {
            let deleted = layer.changes.overwritten(&f.path, f.ordinal)
                || above.iter().any(|(_, l)| l.changes.hides(&f.path));
            let location = Location {
                source: crate::finding::SourceKind::Image,
                path: Some(f.shown.clone()),
                image: Some(image.name.clone()),
                layer: Some(digest.to_string()),
                layer_index: Some(i as u32),
                created_by: created_by(i),
                date: image.config.created.clone(),
                deleted,
                ..Location::default()
            };
            n += scan.record(f.matches.clone(), &location);
        }
    }
    n + scan_config(scan, image, &history)
}

/// Env, Cmd, Entrypoint, Labels, OnBuild, and every history entry's `created_by` and comment:
/// build args and ENV values live here, not in any layer.
fn scan_config(scan: &Scan, image: &Image, history: &[usize]) -> usize {
    let base = Location {
        source: crate::finding::SourceKind::Image,
        image: Some(image.name.clone()),
        date: image.config.created.clone(),
        ..Location::default()
    };
    let mut n = 0;
    let mut one = |path: String, text: &str, loc: Location| {
        let m = layer::matches(scan, text.as_bytes());
        if !m.is_empty() {
            n += scan.record(
                m,
                &Location {
                    path: Some(path),
                    ..loc
                },
            );
        }
    };
    if let Some(c) = &image.config.config {
        let lists = [
            ("Env", &c.env),
            ("Cmd", &c.cmd),
            ("Entrypoint", &c.entrypoint),
            ("OnBuild", &c.on_build),
        ];
        for (field, list) in lists {
            for (i, v) in list.iter().flatten().enumerate() {
                one(format!("<config>/{field}[{i}]"), v, base.clone());
            }
        }
        for (k, v) in c.labels.iter().flatten() {
            one(
                format!("<config>/Labels/{k}"),
                &format!("{k}={v}"),
                base.clone(),
            );
        }
    }
    for (h, entry) in image.config.history.iter().enumerate() {
        // The layer this step made, if it made one.
        let layer = history.iter().position(|&x| x == h);
        let loc = Location {
            layer: layer
                .and_then(|i| image.layers.get(i))
                .map(|(d, _)| d.to_string()),
            layer_index: layer.map(|i| i as u32),
            created_by: entry.created_by.clone(),
            ..base.clone()
        };
        if let Some(c) = &entry.created_by {
            one(format!("<history>[{h}]/created_by"), c, loc.clone());
        }
        if let Some(c) = &entry.comment {
            one(format!("<history>[{h}]/comment"), c, loc);
        }
    }
    n
}
