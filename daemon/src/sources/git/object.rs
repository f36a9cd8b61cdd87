//! Parsers for raw tree, commit and tag objects, as read from the object database. Parsing the
//! raw bytes ourselves (instead of `git2::Tree`/`Commit`) avoids an allocation per entry and
//! the object cache, and lets a corrupt object fail alone.

use super::oid::ObjectId;

/// What a tree entry points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A subtree (`40000`).
    Tree,
    /// A file or symlink blob (`100644`, `100755`, `120000`, …).
    Blob,
    /// A submodule commit (`160000`); not followed.
    Submodule,
}

/// One entry of a tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeEntry<'a> {
    /// What it is.
    pub kind: EntryKind,
    /// Its name in the tree (bytes; git does not require UTF-8).
    pub name: &'a [u8],
    /// Its id.
    pub id: ObjectId,
}

/// Iterates over the entries of a raw tree. Stops (yielding an error once) at malformed data.
pub struct TreeEntries<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TreeEntries<'a> {
    /// Entries of `data`, the body of a tree object.
    pub fn new(data: &'a [u8]) -> TreeEntries<'a> {
        TreeEntries {
            rest: data,
            failed: false,
        }
    }
}

impl<'a> Iterator for TreeEntries<'a> {
    type Item = Result<TreeEntry<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let parsed = (|| {
            let sp = memchr::memchr(b' ', self.rest).ok_or("tree entry without a mode")?;
            let mode = &self.rest[..sp];
            let nul = memchr::memchr(0, &self.rest[sp..]).ok_or("tree entry without a name")? + sp;
            let name = &self.rest[sp + 1..nul];
            let id = self
                .rest
                .get(nul + 1..nul + 21)
                .and_then(ObjectId::from_bytes)
                .ok_or("tree entry with a short id")?;
            let kind = match mode {
                b"40000" | b"040000" => EntryKind::Tree,
                b"160000" => EntryKind::Submodule,
                _ => EntryKind::Blob,
            };
            self.rest = &self.rest[nul + 21..];
            Ok(TreeEntry { kind, name, id })
        })();
        if parsed.is_err() {
            self.failed = true;
        }
        Some(parsed)
    }
}

/// The parts of a commit the walk needs.
#[derive(Debug, Clone)]
pub struct CommitInfo<'a> {
    /// Root tree.
    pub tree: ObjectId,
    /// Parents, in order.
    pub parents: Vec<ObjectId>,
    /// The author line's value (`Name <email> 1700000000 +0100`).
    pub author: &'a [u8],
    /// Committer time (seconds since the epoch), for ordering.
    pub commit_time: i64,
    /// The message (everything after the header).
    pub message: &'a [u8],
}

/// Parses a raw commit.
///
/// # Errors
/// A commit without a valid `tree` header.
pub fn parse_commit(data: &[u8]) -> Result<CommitInfo<'_>, &'static str> {
    let (header, message) = split_header(data);
    let mut tree = None;
    let mut parents = Vec::new();
    let mut author: &[u8] = b"";
    let mut commit_time = 0;
    for line in header.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"tree ") {
            tree = ObjectId::from_hex(v);
        } else if let Some(v) = line.strip_prefix(b"parent ") {
            parents.push(ObjectId::from_hex(v).ok_or("commit with a bad parent id")?);
        } else if let Some(v) = line.strip_prefix(b"author ") {
            author = v;
        } else if let Some(v) = line.strip_prefix(b"committer ") {
            commit_time = signature_time(v).map_or(0, |(t, _)| t);
        }
    }
    Ok(CommitInfo {
        tree: tree.ok_or("commit without a tree")?,
        parents,
        author,
        commit_time,
        message,
    })
}

/// The parts of an annotated tag the walk needs.
#[derive(Debug, Clone)]
pub struct TagInfo<'a> {
    /// The tagged object.
    pub target: ObjectId,
    /// The tag's name.
    pub name: &'a [u8],
    /// The tagger line's value.
    pub tagger: &'a [u8],
    /// The message.
    pub message: &'a [u8],
}

/// Parses a raw annotated tag.
///
/// # Errors
/// A tag without a valid `object` header.
pub fn parse_tag(data: &[u8]) -> Result<TagInfo<'_>, &'static str> {
    let (header, message) = split_header(data);
    let mut target = None;
    let mut name: &[u8] = b"";
    let mut tagger: &[u8] = b"";
    for line in header.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"object ") {
            target = ObjectId::from_hex(v);
        } else if let Some(v) = line.strip_prefix(b"tag ") {
            name = v;
        } else if let Some(v) = line.strip_prefix(b"tagger ") {
            tagger = v;
        }
    }
    Ok(TagInfo {
        target: target.ok_or("tag without an object")?,
        name,
        tagger,
        message,
    })
}

fn split_header(data: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memmem::find(data, b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, b""),
    }
}

/// The time and UTC offset (minutes) at the end of a signature: `Name <email> 1700000000 +0130`.
pub fn signature_time(sig: &[u8]) -> Option<(i64, i32)> {
    let after = &sig[memchr::memrchr(b'>', sig)? + 1..];
    let text = std::str::from_utf8(after).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let secs: i64 = parts.next()?.parse().ok()?;
    let tz = parts.next().unwrap_or("+0000");
    let (sign, digits) = match tz.as_bytes().first() {
        Some(b'-') => (-1, &tz[1..]),
        Some(b'+') => (1, &tz[1..]),
        _ => (1, tz),
    };
    let n: i32 = digits.parse().ok()?;
    Some((secs, sign * ((n / 100) * 60 + n % 100)))
}

/// `Name <email>` of a signature (without the time).
pub fn signature_name(sig: &[u8]) -> String {
    let end = memchr::memrchr(b'>', sig).map_or(sig.len(), |i| i + 1);
    String::from_utf8_lossy(&sig[..end]).trim().to_owned()
}

/// The first line of a message.
pub fn summary(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.trim_start()
        .lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .to_owned()
}

/// RFC 3339 for a time and UTC offset in minutes: `2024-05-01T12:00:00+02:00`.
pub fn rfc3339(secs: i64, offset_min: i32) -> String {
    let local = secs + i64::from(offset_min) * 60;
    let days = local.div_euclid(86_400);
    let tod = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let off = offset_min.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        off / 60,
        off % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_entries_parse() {
        let mut data = Vec::new();
        data.extend_from_slice(b"100644 a.txt\0");
        data.extend_from_slice(&[1; 20]);
        data.extend_from_slice(b"40000 dir\0");
        data.extend_from_slice(&[2; 20]);
        data.extend_from_slice(b"160000 sub\0");
        data.extend_from_slice(&[3; 20]);
        let e: Vec<_> = TreeEntries::new(&data).map(Result::unwrap).collect();
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].kind, e[0].name, e[0].id),
            (EntryKind::Blob, &b"a.txt"[..], ObjectId([1; 20]))
        );
        assert_eq!(e[1].kind, EntryKind::Tree);
        assert_eq!(e[2].kind, EntryKind::Submodule);
        let bad: Vec<_> = TreeEntries::new(b"100644 x\0short").collect();
        assert!(bad[0].is_err());
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn commit_parses() {
        let raw = b"tree 0123456789abcdef0123456789abcdef01234567\n\
parent 89abcdef0123456789abcdef0123456789abcdef\n\
author A U Thor <a@example.com> 1700000000 +0130\n\
committer C <c@example.com> 1700000100 -0500\n\
\n\
Add the thing\n\nbody\n";
        let c = parse_commit(raw).unwrap();
        assert_eq!(c.parents.len(), 1);
        assert_eq!(c.commit_time, 1_700_000_100);
        assert_eq!(signature_name(c.author), "A U Thor <a@example.com>");
        assert_eq!(signature_time(c.author), Some((1_700_000_000, 90)));
        assert_eq!(summary(c.message), "Add the thing");
    }

    #[test]
    fn dates_format() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(1_700_000_000, 90), "2023-11-14T23:43:20+01:30");
        assert_eq!(rfc3339(951_782_400, -300), "2000-02-28T19:00:00-05:00");
    }
}
