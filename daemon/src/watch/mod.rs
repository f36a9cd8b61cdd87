//! How the daemon learns that there are new images to scan.
//!
//! - [`docker_events`]: the local Docker engine's event stream (images built, pulled, tagged,
//!   loaded or imported), followed over its Unix socket with reconnects, plus the image list
//!   for a first scan at start.
//! - [`registry_poll`]: a registry repository's tags and their manifest digests, polled, and
//!   the tags that changed between two polls.
//!
//! Neither scans anything: they name images, and the daemon queues scans of them.

pub mod docker_events;
pub mod registry_poll;
