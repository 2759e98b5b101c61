//! What the daemon benchmarks read from /proc while the daemon runs in this process: the load
//! average, the process's CPU ticks and resident memory, and each thread's CPU ticks, split
//! into decode (GStreamer's threads), pre-processing, inference and the rest.

use std::collections::BTreeMap;

/// Linux's USER_HZ: /proc times are in these ticks on every architecture Lookout targets.
const TICKS_PER_SECOND: f64 = 100.0;

/// The 1, 5 and 15 minute load averages, as /proc/loadavg has them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// utime + stime of a /proc stat line, in ticks; the name is in parentheses and may hold spaces.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// This process's CPU ticks and resident memory (kB).
pub fn proc_self() -> (u64, u64) {
    let ticks =
        std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| stat_ticks(&s)).map(|(_, t)| t).unwrap_or(0);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    (ticks, rss)
}

/// CPU ticks of every live thread of this process, by thread id, with the thread's name.
pub fn thread_ticks() -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if let Some(entry) = std::fs::read_to_string(t.path().join("stat")).ok().and_then(|s| stat_ticks(&s)) {
                out.insert(tid, entry);
            }
        }
    }
    out
}

/// Per-thread CPU over a window, kept by thread id, not by name. By name it went wrong twice:
/// GStreamer renames a pooled thread after each element it serves (a looped file builds
/// `qtdemux7` after `qtdemux6`), so a long-lived thread's whole lifetime showed up as new;
/// and threads that ended in the window took their ticks with them. Sampling every few
/// hundred ms keeps the last count of a thread that later ends.
#[derive(Debug, Default, Clone)]
pub struct ThreadBook {
    /// Ticks of each thread alive when the window opened.
    start: BTreeMap<u32, u64>,
    /// Name and ticks of each thread the last time it was seen.
    last: BTreeMap<u32, (String, u64)>,
}

impl ThreadBook {
    pub fn open(now: BTreeMap<u32, (String, u64)>) -> ThreadBook {
        ThreadBook { start: now.iter().map(|(tid, (_, t))| (*tid, *t)).collect(), last: now }
    }

    pub fn sample(&mut self, now: BTreeMap<u32, (String, u64)>) {
        self.last.extend(now);
    }

    /// Ticks spent in the window by threads whose (last) name satisfies `pick`. A thread born in
    /// the window counts from zero.
    fn ticks(&self, pick: impl Fn(&str) -> bool) -> u64 {
        self.last
            .iter()
            .filter(|(_, (name, _))| pick(name))
            .map(|(tid, (_, t))| t.saturating_sub(self.start.get(tid).copied().unwrap_or(0)))
            .sum()
    }
}

/// CPU seconds by part over a window, all from thread ticks, so the parts add up to at most
/// the process total.
pub struct Shares {
    pub total: f64,
    /// GStreamer's threads: demux, decode, scale and convert.
    decode: f64,
    /// The detect workers' CPU, split between letterbox and session.run by their wall times
    /// (with one intra-op thread, ONNX Runtime runs in the worker's own thread).
    pre: f64,
    infer: f64,
}

impl Shares {
    pub fn from_ticks(total_ticks: u64, book: &ThreadBook, pre_us: u64, infer_us: u64) -> Shares {
        let secs = |t: u64| t as f64 / TICKS_PER_SECOND;
        let detect = secs(book.ticks(|n| n.starts_with("detect-")));
        let timed = (pre_us + infer_us).max(1) as f64;
        Shares {
            total: secs(total_ticks),
            decode: secs(book.ticks(|n| !ours(n))),
            pre: detect * pre_us as f64 / timed,
            infer: detect * infer_us as f64 / timed,
        }
    }

    pub fn print(&self, secs: f64) {
        let pct = |x: f64| 100.0 * x / secs;
        // The rest: our source, objects and publisher threads, and threads that ended between samples.
        let rest = (self.total - self.decode - self.pre - self.infer).max(0.0);
        println!(
            "    CPU {:.0} % of one core: decode + scale/convert (GStreamer threads) {:.0} %, pre-processing (letterbox) {:.0} %, inference {:.0} %, rest {:.0} %",
            pct(self.total),
            pct(self.decode),
            pct(self.pre),
            pct(self.infer),
            pct(rest)
        );
    }
}

/// Threads that are ours (named where the stages and the benchmarks spawn them); every other
/// thread is GStreamer's.
fn ours(name: &str) -> bool {
    ["src-", "detect-", "objects-", "publish", "stats", "metrics", "bench", "lookout"]
        .iter()
        .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_name_parse() {
        let line = "1234 (avdec_h264 (0)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(stat_ticks(line), Some(("avdec_h264 (0)".to_string(), 300)));
        assert!(ours("detect-0") && !ours("multiqueue0:src"));
    }

    fn snap(entries: &[(u32, &str, u64)]) -> BTreeMap<u32, (String, u64)> {
        entries.iter().map(|(tid, n, t)| (*tid, (n.to_string(), *t))).collect()
    }

    #[test]
    fn a_renamed_pooled_thread_counts_only_its_ticks_in_the_window() {
        // Thread 7 served qtdemux0 before the window and qtdemux1 after a loop restart.
        let mut book = ThreadBook::open(snap(&[(7, "qtdemux0:sink", 500), (8, "detect-0", 100)]));
        book.sample(snap(&[(7, "qtdemux1:sink", 530), (8, "detect-0", 160)]));
        assert_eq!(book.ticks(|n| !ours(n)), 30);
        assert_eq!(book.ticks(|n| n.starts_with("detect-")), 60);
    }

    #[test]
    fn threads_born_or_ended_in_the_window_keep_their_ticks() {
        let mut book = ThreadBook::open(snap(&[(7, "avdec_h264-0", 40)]));
        // 9 is born, then 7 ends after its last sample.
        book.sample(snap(&[(7, "avdec_h264-0", 90), (9, "avdec_h264-0", 5)]));
        book.sample(snap(&[(9, "avdec_h264-0", 25)]));
        assert_eq!(book.ticks(|n| !ours(n)), 50 + 25);
    }

    #[test]
    fn detect_ticks_split_by_wall_time_and_parts_stay_within_the_total() {
        let mut book = ThreadBook::open(snap(&[(1, "detect-0", 0), (2, "queue0:src", 0)]));
        book.sample(snap(&[(1, "detect-0", 100), (2, "queue0:src", 50)]));
        let s = Shares::from_ticks(200, &book, 1_000, 3_000);
        assert!((s.decode - 0.5).abs() < 1e-9);
        assert!((s.pre - 0.25).abs() < 1e-9 && (s.infer - 0.75).abs() < 1e-9);
        assert!(s.decode + s.pre + s.infer <= s.total);
    }
}
