//! `keyward scan stdin`: build logs and pipes, streamed in constant memory.

use crate::finding::Location;
use crate::scan::Scan;

/// Scans standard input to its end.
pub fn scan(scan: &Scan, label: Option<&str>) -> std::io::Result<()> {
    let location = Location {
        source: crate::finding::SourceKind::Stdin,
        path: label.map(str::to_owned),
        ..Location::default()
    };
    let stdin = std::io::stdin();
    scan.scan_reader(stdin.lock(), &location)?;
    Ok(())
}
