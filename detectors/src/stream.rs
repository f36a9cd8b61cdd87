//! [`StreamScanner`]: scans a stream in chunks with constant memory.

use crate::{Match, Scanner};

/// Default chunk size: large enough that per-chunk overhead vanishes, small enough to keep
/// memory flat.
pub const DEFAULT_CHUNK: usize = 1 << 20;

/// A predicate on (buffer, offset of a match in it).
type MatchFilter<'s> = Box<dyn FnMut(&[u8], usize) -> bool + 's>;

/// Scans input that arrives in pieces (a pipe, a build log, a large layer entry) with memory
/// bounded by the chunk size plus a fixed overlap, whatever the input's length.
///
/// Each round scans `context | new bytes`. Matches starting in the last `overlap` bytes are
/// held back and found again, with full context, in the next round; so a secret that straddles
/// a chunk boundary is reported exactly once, with absolute offsets and lines.
pub struct StreamScanner<'s> {
    scanner: &'s Scanner,
    /// Called with the current buffer and a match's offset in it; `false` drops the match
    /// (e.g. a `keyward:allow` comment on its line, which only the buffer can show).
    filter: Option<MatchFilter<'s>>,
    chunk: usize,
    overlap: usize,
    buf: Vec<u8>,
    /// Offset in `buf` from which matches have not been reported yet.
    report_from: usize,
    /// Absolute offset of `buf[0]`.
    base_offset: usize,
    /// Newlines before `buf[0]`.
    base_lines: u64,
    /// Bytes between the last newline before `buf[0]` and `buf[0]`.
    base_column: u64,
}

impl std::fmt::Debug for StreamScanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScanner")
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

impl<'s> StreamScanner<'s> {
    /// A stream scanner with the default chunk size.
    pub fn new(scanner: &'s Scanner) -> StreamScanner<'s> {
        StreamScanner::with_chunk(scanner, DEFAULT_CHUNK)
    }

    /// A stream scanner that scans every `chunk` bytes.
    pub fn with_chunk(scanner: &'s Scanner, chunk: usize) -> StreamScanner<'s> {
        let overlap = scanner.max_context() * 2;
        StreamScanner {
            scanner,
            filter: None,
            // At least 4× the overlap, so each round drops at least half of what it scanned.
            chunk: chunk.max(overlap * 4),
            overlap,
            buf: Vec::new(),
            report_from: 0,
            base_offset: 0,
            base_lines: 0,
            base_column: 0,
        }
    }

    /// Drops matches for which `filter(buffer, offset_in_buffer)` is false.
    #[must_use]
    pub fn with_filter(mut self, filter: impl FnMut(&[u8], usize) -> bool + 's) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Feeds bytes; appends the matches that are final to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Match>) {
        while !data.is_empty() {
            let room = self.chunk.saturating_sub(self.buf.len()).max(1);
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() >= self.chunk {
                self.round(false, out);
            }
        }
    }

    /// Ends the stream; appends the remaining matches to `out`.
    pub fn finish(mut self, out: &mut Vec<Match>) {
        self.round(true, out);
    }

    /// Bytes consumed so far (reported or held).
    pub fn offset(&self) -> usize {
        self.base_offset + self.buf.len()
    }

    fn round(&mut self, last: bool, out: &mut Vec<Match>) {
        let limit = if last {
            self.buf.len()
        } else {
            self.buf.len() - self.overlap
        };
        for mut m in self.scanner.scan(&self.buf) {
            if m.span.start < self.report_from || (m.span.start >= limit && !last) {
                continue;
            }
            if let Some(f) = &mut self.filter
                && !f(&self.buf, m.span.start)
            {
                continue;
            }
            if m.line == 1 {
                m.column += self.base_column;
            }
            m.line += self.base_lines;
            m.span = m.span.start + self.base_offset..m.span.end + self.base_offset;
            out.push(m);
        }
        if last {
            return;
        }
        // Keep `overlap` bytes before `limit` as context for the next round.
        let cut = limit.saturating_sub(self.overlap);
        let dropped = &self.buf[..cut];
        let newlines = memchr::memchr_iter(b'\n', dropped).count() as u64;
        match memchr::memrchr(b'\n', dropped) {
            Some(nl) => self.base_column = (cut - nl - 1) as u64,
            None => self.base_column += cut as u64,
        }
        self.base_lines += newlines;
        self.base_offset += cut;
        self.buf.drain(..cut);
        self.report_from = limit - cut;
    }
}
