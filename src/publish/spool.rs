//! A bounded, file-backed FIFO of outgoing messages: where MQTT messages wait while the broker
//! is away, and across restarts.
//!
//! ```toml
//! # lookout.toml
//! [spool]
//! dir = "/var/lib/lookout/spool"  # default: $STATE_DIRECTORY/spool, else .lookout/spool
//! max_bytes = 104857600           # default: 100 MiB; when full the OLDEST messages are dropped
//! ```
//!
//! Layout: append-only segment files `<id>.seg` (20-digit ids, in order) and a `head` file that
//! says how far the oldest segment has been delivered (`<segment id> <record index>`). A record
//! is `len: u32 LE`, `crc32(body): u32 LE`, then the body: `topic_len: u16 LE`, topic,
//! `retain: u8`, payload. Opening a spool scans every segment; a torn or corrupt record (a crash
//! in the middle of a write) ends its segment there, and the last segment is cut back to its
//! last whole record, so a crash costs at most the record being written.
//!
//! Records get sequence numbers, in order, for the life of a `Spool` value (they restart at 0
//! on `open`). Reading never removes anything: `commit_through(seq)` does, once the caller knows
//! the records were delivered, so delivery is at least once. `head` is written lazily
//! (`sync_head`); a crash before that replays a few delivered records, never loses any.
//!
//! When a push would take the spool over `max_bytes`, the oldest records go first (whole
//! segments while there is more than one), counted in `dropped_oldest` and logged at most once
//! every [`WARN_INTERVAL`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Segment files are at most this big (a segment is also at most an eighth of `max_bytes`,
/// so dropping the oldest one frees a small part of the spool, not all of it).
pub const MAX_SEGMENT_BYTES: u64 = 8 << 20;
/// The smallest segment target, so a tiny spool doesn't make a file per record.
pub const MIN_SEGMENT_BYTES: u64 = 1024;
/// How often a full spool may log that it dropped messages.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);
const HEADER_BYTES: u64 = 8;
const HEAD_FILE: &str = "head";

/// One message as it will be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub retain: bool,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}; check that the directory is writable and the disk not full")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a {bytes}-byte message is larger than the whole spool (spool.max_bytes = {max}); it was not spooled")]
    TooLarge { bytes: u64, max: u64 },
    #[error("topic of {0} bytes is longer than MQTT allows")]
    TopicTooLong(usize),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Start of each whole record in the file.
    offsets: Vec<u64>,
    /// Bytes of whole records: where the next record goes.
    end: u64,
    /// Sequence number of `offsets[0]`.
    first_seq: u64,
}

impl Segment {
    fn count(&self) -> u64 {
        self.offsets.len() as u64
    }
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Index of the first undelivered record in `segments[0]`.
    head: usize,
    head_dirty: bool,
    /// Append handle of the last segment, when this `Spool` created it.
    tail: Option<File>,
    /// Id of the next segment: ids only grow, even through an empty spool, so a stale head
    /// file can never point past a newer segment.
    next_id: u64,
    next_seq: u64,
    dropped_oldest: u64,
    dropped_since_warn: u64,
    last_warn: Option<Instant>,
}

impl Spool {
    /// Open (creating the directory if needed) and recover what an earlier run left, in order.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut ids: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".seg").filter(|s| s.len() == 20).and_then(|s| s.parse::<u64>().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let head = read_head(&dir.join(HEAD_FILE));
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
            segments: VecDeque::new(),
            head: 0,
            head_dirty: false,
            tail: None,
            next_id: ids.last().copied().max(head.map(|(hid, _)| hid)).map_or(1, |id| id + 1),
            next_seq: 0,
            dropped_oldest: 0,
            dropped_since_warn: 0,
            last_warn: None,
        };
        let last = ids.last().copied();
        for id in ids {
            let path = spool.segment_path(id);
            // Segments before the recorded head were delivered; a crash kept them from going.
            if head.is_some_and(|(hid, _)| id < hid) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let (offsets, end) = scan_segment(&path, Some(id) == last)?;
            if offsets.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let first_seq = spool.next_seq;
            spool.next_seq += offsets.len() as u64;
            spool.segments.push_back(Segment { id, offsets, end, first_seq });
        }
        if let (Some((hid, index)), Some(first)) = (head, spool.segments.front())
            && first.id == hid
        {
            spool.head = (index as usize).min(first.offsets.len());
        }
        spool.release_delivered();
        spool.enforce_bound();
        Ok(spool)
    }

    /// Append a record. Returns its sequence number. May drop the oldest records to stay
    /// within `max_bytes`.
    pub fn push(&mut self, rec: &Record) -> Result<u64, SpoolError> {
        let body_len = 2 + rec.topic.len() + 1 + rec.payload.len();
        let total = HEADER_BYTES + body_len as u64;
        if total > self.max_bytes {
            return Err(SpoolError::TooLarge { bytes: total, max: self.max_bytes });
        }
        let topic_len = u16::try_from(rec.topic.len()).map_err(|_| SpoolError::TopicTooLong(rec.topic.len()))?;
        let mut buf = Vec::with_capacity(total as usize);
        buf.extend_from_slice(&(body_len as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&topic_len.to_le_bytes());
        buf.extend_from_slice(rec.topic.as_bytes());
        buf.push(rec.retain as u8);
        buf.extend_from_slice(&rec.payload);
        let crc = crc32(&buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());

        let need_new = match (&self.tail, self.segments.back()) {
            (Some(_), Some(seg)) => seg.end >= self.segment_bytes,
            _ => true,
        };
        if need_new {
            let id = self.next_id;
            self.next_id += 1;
            let path = self.segment_path(id);
            let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path).map_err(io_err(&path))?;
            self.tail = Some(file);
            self.segments.push_back(Segment { id, offsets: Vec::new(), end: 0, first_seq: self.next_seq });
        }
        let (Some(file), Some(seg)) = (self.tail.as_mut(), self.segments.back_mut()) else {
            unreachable!("a tail segment was just ensured");
        };
        if let Err(e) = file.write_all(&buf) {
            // Cut a partial write back off, so the segment holds whole records only.
            let _ = file.set_len(seg.end);
            let _ = file.seek(SeekFrom::Start(seg.end));
            return Err(SpoolError::Io { path: self.dir.join(format!("{:020}.seg", seg.id)), source: e });
        }
        seg.offsets.push(seg.end);
        seg.end += total;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.enforce_bound();
        Ok(seq)
    }

    /// Up to `n` undelivered records from `from_seq` on (or from the oldest one, if `from_seq`
    /// was dropped), with their sequence numbers. A record found corrupt on disk is skipped,
    /// counted with the dropped ones.
    pub fn read(&mut self, from_seq: u64, n: usize) -> Result<Vec<(u64, Record)>, SpoolError> {
        let mut out = Vec::new();
        let mut corrupt = 0;
        let mut seq = from_seq.max(self.first_seq());
        while out.len() < n && seq < self.next_seq {
            let Some(seg) = self.segments.iter().find(|s| seq >= s.first_seq && seq < s.first_seq + s.count()) else {
                break;
            };
            let i = (seq - seg.first_seq) as usize;
            let j = i.saturating_add(n - out.len()).min(seg.offsets.len());
            let start = seg.offsets[i];
            let stop = if j < seg.offsets.len() { seg.offsets[j] } else { seg.end };
            let path = self.segment_path(seg.id);
            let mut bytes = vec![0; (stop - start) as usize];
            let mut f = File::open(&path).map_err(io_err(&path))?;
            f.seek(SeekFrom::Start(start)).map_err(io_err(&path))?;
            f.read_exact(&mut bytes).map_err(io_err(&path))?;
            for k in i..j {
                let at = (seg.offsets[k] - start) as usize;
                match decode(&bytes[at..]) {
                    Some((rec, _)) => out.push((seg.first_seq + k as u64, rec)),
                    None => {
                        corrupt += 1;
                        tracing::warn!(path = %path.display(), record = k, "spool record corrupt on disk; skipped");
                    }
                }
            }
            seq = seg.first_seq + j as u64;
        }
        self.dropped_oldest += corrupt;
        Ok(out)
    }

    /// Everything up to and including `seq` was delivered: forget it. Segments that are
    /// wholly delivered are deleted at once; the head file is written by [`Spool::sync_head`].
    pub fn commit_through(&mut self, seq: u64) {
        let first = self.first_seq();
        if seq < first || self.segments.is_empty() {
            return;
        }
        let upto = (seq + 1).min(self.next_seq);
        while let Some(seg) = self.segments.front() {
            if upto >= seg.first_seq + seg.count() {
                self.remove_front_segment();
            } else {
                self.head = (upto - seg.first_seq) as usize;
                break;
            }
        }
        self.head_dirty = true;
    }

    /// Persist how far delivery got. Cheap to call often: writes only after a commit.
    pub fn sync_head(&mut self) {
        if !self.head_dirty {
            return;
        }
        self.head_dirty = false;
        let path = self.dir.join(HEAD_FILE);
        let Some(seg) = self.segments.front() else {
            let _ = std::fs::remove_file(&path);
            return;
        };
        let tmp = self.dir.join("head.tmp");
        let res =
            std::fs::write(&tmp, format!("{} {}\n", seg.id, self.head)).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = res {
            // Only costs duplicates after a restart.
            tracing::warn!(path = %path.display(), error = %e, "could not record spool progress");
        }
    }

    /// Undelivered records.
    pub fn len(&self) -> u64 {
        self.next_seq - self.first_seq()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of undelivered records on disk.
    pub fn bytes(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|s| s.end).sum();
        let delivered = self.segments.front().map_or(0, |s| s.offsets.get(self.head).copied().unwrap_or(s.end));
        total - delivered
    }

    /// Records dropped to stay within `max_bytes` (or found corrupt) since `open`.
    pub fn dropped_oldest(&self) -> u64 {
        self.dropped_oldest
    }

    /// Sequence number of the oldest undelivered record (== `next_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.segments.front().map_or(self.next_seq, |s| s.first_seq + self.head as u64)
    }

    /// Sequence number the next push gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    fn remove_front_segment(&mut self) {
        if let Some(seg) = self.segments.pop_front() {
            if self.segments.is_empty() {
                self.tail = None;
            }
            let _ = std::fs::remove_file(self.segment_path(seg.id));
        }
        self.head = 0;
        self.head_dirty = true;
    }

    /// Drop fully delivered leading segments (after recovery).
    fn release_delivered(&mut self) {
        while self.segments.front().is_some_and(|s| self.head >= s.offsets.len()) {
            self.remove_front_segment();
        }
    }

    fn enforce_bound(&mut self) {
        let mut dropped = 0;
        while self.bytes() > self.max_bytes {
            let Some(seg) = self.segments.front() else { break };
            if self.segments.len() > 1 {
                dropped += seg.count() - self.head as u64;
                self.remove_front_segment();
            } else {
                self.head += 1;
                self.head_dirty = true;
                dropped += 1;
                self.release_delivered();
            }
        }
        if dropped == 0 {
            return;
        }
        self.dropped_oldest += dropped;
        self.dropped_since_warn += dropped;
        if self.last_warn.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
            tracing::warn!(dir = %self.dir.display(), max_bytes = self.max_bytes, dropped = self.dropped_since_warn, dropped_total = self.dropped_oldest,
                "spool full while the broker is away: oldest messages dropped. Raise spool.max_bytes to keep more");
            self.last_warn = Some(Instant::now());
            self.dropped_since_warn = 0;
        }
        self.sync_head();
    }
}

/// `(segment id, record index)` from the head file, if there is a readable one.
fn read_head(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Offsets of the whole records of a segment, and where they end. In the last segment a torn
/// tail is cut off, so appends continue after whole records.
fn scan_segment(path: &Path, is_last: bool) -> Result<(Vec<u64>, u64), SpoolError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut offsets = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match decode(&bytes[at..]) {
            Some((_, used)) => {
                offsets.push(at as u64);
                at += used;
            }
            None => break,
        }
    }
    if at < bytes.len() {
        tracing::warn!(path = %path.display(), valid_bytes = at, file_bytes = bytes.len(),
            "spool segment ends in a torn or corrupt record (a crash while writing?); the rest of it is skipped");
        if is_last {
            let f = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
            f.set_len(at as u64).map_err(io_err(path))?;
        }
    }
    Ok((offsets, at as u64))
}

/// One record from the start of `b`, and the bytes it took; `None` if torn or corrupt.
fn decode(b: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    let body = b.get(8..8usize.checked_add(len)?)?;
    if crc32(body) != crc {
        return None;
    }
    let topic_len = u16::from_le_bytes(body.get(0..2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(body.get(2..2 + topic_len)?).ok()?.to_string();
    let retain = *body.get(2 + topic_len)? != 0;
    let payload = body.get(3 + topic_len..)?.to_vec();
    Some((Record { topic, retain, payload }, 8 + len))
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, as zlib and PNG use it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "lookout-spool-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn rec(i: usize) -> Record {
        Record {
            topic: format!("t/{}", i % 3),
            retain: i.is_multiple_of(2),
            payload: format!("message {i:05} {}", "x".repeat(i % 50)).into_bytes(),
        }
    }

    fn drain(s: &mut Spool) -> Vec<Record> {
        let all = s.read(0, usize::MAX).unwrap();
        if let Some((last, _)) = all.last() {
            s.commit_through(*last);
        }
        all.into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_missing_directory_is_created_and_an_empty_spool_is_empty() {
        let dir = tmp("missing").join("a/b");
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        assert!(dir.is_dir());
        assert!(s.is_empty());
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert!(s.read(0, 10).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn order_is_kept_across_segments_reads_and_reopen() {
        let dir = tmp("order");
        let mut s = Spool::open(&dir, 64 << 10).unwrap(); // 8 KiB segments
        for i in 0..500 {
            assert_eq!(s.push(&rec(i)).unwrap(), i as u64);
        }
        assert!(s.segments.len() > 3, "several segments: {}", s.segments.len());
        assert_eq!(s.len(), 500);
        // Read in batches without committing: reading removes nothing.
        let first: Vec<Record> = s.read(0, 7).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(first, (0..7).map(rec).collect::<Vec<_>>());
        let mid = s.read(200, 3).unwrap();
        assert_eq!(mid.iter().map(|(q, _)| *q).collect::<Vec<_>>(), vec![200, 201, 202]);
        assert_eq!(mid[0].1, rec(200));
        // Deliver the first 123, then reopen: the rest comes back in order.
        s.commit_through(122);
        s.sync_head();
        assert_eq!(s.len(), 377);
        drop(s);
        let mut s = Spool::open(&dir, 64 << 10).unwrap();
        assert_eq!(s.len(), 377);
        for i in 500..520 {
            s.push(&rec(i)).unwrap();
        }
        assert_eq!(drain(&mut s), (123..520).map(rec).collect::<Vec<_>>());
        s.sync_head();
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        drop(s);
        let s = Spool::open(&dir, 64 << 10).unwrap();
        assert!(s.is_empty(), "delivered records stay delivered after reopen");
        let segs = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"))
            .count();
        assert_eq!(segs, 0, "delivered segments are deleted");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unsynced_head_replays_rather_than_loses() {
        let dir = tmp("unsynced");
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        for i in 0..10 {
            s.push(&rec(i)).unwrap();
        }
        s.commit_through(2);
        s.sync_head();
        s.commit_through(5); // not synced: a crash here
        drop(s);
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(drain(&mut s), (3..10).map(rec).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_skipped_and_appending_continues() {
        let dir = tmp("torn");
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        for i in 0..5 {
            s.push(&rec(i)).unwrap();
        }
        let seg = s.segment_path(s.segments.back().unwrap().id);
        drop(s);
        // A crash halfway through writing a sixth record.
        let mut whole = std::fs::read(&seg).unwrap();
        let before = whole.len();
        {
            let mut t = Spool::open(&tmp("torn-src"), 1 << 20).unwrap();
            t.push(&rec(5)).unwrap();
            let other = t.segment_path(t.segments.back().unwrap().id);
            let six = std::fs::read(&other).unwrap();
            whole.extend_from_slice(&six[..six.len() / 2]);
            let _ = std::fs::remove_dir_all(t.dir());
        }
        std::fs::write(&seg, &whole).unwrap();
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(std::fs::metadata(&seg).unwrap().len() as usize, before, "torn tail cut off");
        s.push(&rec(6)).unwrap();
        drop(s);
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(drain(&mut s), [0, 1, 2, 3, 4, 6].map(rec).to_vec());

        // Garbage (a flipped bit) in the middle of the last record, and a lone partial header.
        let mut s2 = Spool::open(&tmp("torn2"), 1 << 20).unwrap();
        for i in 0..3 {
            s2.push(&rec(i)).unwrap();
        }
        let seg2 = s2.segment_path(s2.segments.back().unwrap().id);
        let dir2 = s2.dir().to_path_buf();
        drop(s2);
        let mut b = std::fs::read(&seg2).unwrap();
        let n = b.len();
        b[n - 3] ^= 0x40;
        b.extend_from_slice(&[7, 0]);
        std::fs::write(&seg2, &b).unwrap();
        let mut s2 = Spool::open(&dir2, 1 << 20).unwrap();
        assert_eq!(drain(&mut s2), [0, 1].map(rec).to_vec());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }

    #[test]
    fn max_bytes_drops_the_oldest_and_counts_them() {
        let dir = tmp("bound");
        let max = 16 << 10; // 2 KiB segments
        let mut s = Spool::open(&dir, max).unwrap();
        for i in 0..1000 {
            s.push(&rec(i)).unwrap();
            assert!(s.bytes() <= max, "bytes {} within {max}", s.bytes());
        }
        let kept = s.len();
        assert!(kept > 100 && kept < 1000, "kept {kept}");
        assert_eq!(s.dropped_oldest(), 1000 - kept, "every record is kept or counted");
        // What is left is the newest, in order.
        assert_eq!(drain(&mut s), (1000 - kept as usize..1000).map(rec).collect::<Vec<_>>());
        // A record bigger than the whole spool is refused, not half-written.
        let huge = Record { topic: "t".into(), retain: false, payload: vec![0; max as usize] };
        assert!(matches!(s.push(&huge), Err(SpoolError::TooLarge { .. })));
        // A smaller bound on reopen applies at once.
        for i in 0..100 {
            s.push(&rec(i)).unwrap();
        }
        drop(s);
        let s = Spool::open(&dir, 4 << 10).unwrap();
        assert!(s.bytes() <= 4 << 10);
        assert_eq!(s.dropped_oldest() + s.len(), 100);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn commits_of_dropped_records_are_harmless() {
        let dir = tmp("dropcommit");
        let mut s = Spool::open(&dir, 4 << 10).unwrap();
        let first = s.push(&rec(0)).unwrap();
        for i in 1..200 {
            s.push(&rec(i)).unwrap();
        }
        assert!(s.first_seq() > first);
        let before = s.len();
        s.commit_through(first);
        assert_eq!(s.len(), before);
        // Reading from a dropped position starts at the oldest kept record.
        let got = s.read(first, 1).unwrap();
        assert_eq!(got[0].0, s.first_seq());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
