//! Text helpers every layer uses, at the bottom of the module graph (they import nothing of
//! ours): one "did you mean" rule for config keys, labels and provider names alike; the one
//! [`Problem`] type that each stage's `validate()` returns; where a key sits in a TOML file
//! ([`locate`]); long values shortened for error messages; passwords redacted from URIs.

pub mod locate;

/// Levenshtein distance, for short names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// How far a typo may be from the name it was meant to be.
const SUGGEST_MAX_EDITS: usize = 2;

/// The known name that `wanted` was most likely meant to be: the closest, when it is within
/// [`SUGGEST_MAX_EDITS`] edits and closer than rewriting `wanted` whole (`ab` is not a typo of
/// `cd`). Case-blind.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = wanted.trim().to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (edit_distance(&wanted, &k.to_ascii_lowercase()), k))
        .min()
        .filter(|(d, _)| *d <= SUGGEST_MAX_EDITS && *d < wanted.chars().count())
        .map(|(_, k)| k)
}

/// One thing wrong with a setting, found by a stage's pure `validate()`. `key` is relative to
/// the table the stage was given (`min_score`, `zones[1].polygon`); the caller that knows
/// where that table sits puts its prefix on with [`Problem::under`], and the config loader
/// adds the file and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { key: key.into(), message: message.into() }
    }

    /// The same problem seen from the table above: `under("detect", "fps")` is `detect.fps`;
    /// an empty key names the table itself.
    pub fn under(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        self.key = if self.key.is_empty() {
            prefix.to_string()
        } else if self.key.starts_with('[') {
            format!("{prefix}{}", self.key)
        } else {
            format!("{prefix}.{}", self.key)
        };
        self
    }
}

/// Problems found while checking one table, collected in order.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(key, message));
    }

    /// Problems of a sub-table, keyed under `prefix`.
    pub fn extend_under(&mut self, prefix: &str, problems: impl IntoIterator<Item = Problem>) {
        self.0.extend(problems.into_iter().map(|p| p.under(prefix)));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Words longer than this are values echoed back (a URI, a path, a string where a number
/// belongs) and are shortened: enough to recognise, not the value again.
const LONG_WORD_CHARS: usize = 100;
/// Kept of a long word: its start, then its length.
const KEPT_WORD_CHARS: usize = 48;
/// A message longer than this, even of short words, keeps its start and end only.
const LONG_MESSAGE_CHARS: usize = 1000;

/// `text` with long values cut down, so that a 10 MB string in a config file gives a one-line
/// error, not a 10 MB one: each word over [`LONG_WORD_CHARS`] keeps its first
/// [`KEPT_WORD_CHARS`] characters and says how long it was, and a message still over
/// [`LONG_MESSAGE_CHARS`] keeps its start and its end (where the advice is).
pub fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= LONG_WORD_CHARS {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(4 * LONG_MESSAGE_CHARS));
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        let chars = word.chars().count();
        if chars > LONG_WORD_CHARS {
            out.extend(word.chars().take(KEPT_WORD_CHARS));
            out.push_str(&format!("… ({chars} characters)"));
        } else {
            out.push_str(word);
        }
        let space_end = tail.find(|c: char| !c.is_whitespace()).unwrap_or(tail.len());
        out.push_str(&tail[..space_end]);
        rest = &tail[space_end..];
    }
    let chars = out.chars().count();
    if chars > LONG_MESSAGE_CHARS {
        let head: String = out.chars().take(LONG_MESSAGE_CHARS / 2).collect();
        let tail: String = out.chars().skip(chars - LONG_MESSAGE_CHARS / 4).collect();
        out =
            format!("{head} … ({} characters left out) … {tail}", chars - head.chars().count() - tail.chars().count());
    }
    std::borrow::Cow::Owned(out)
}

/// `rtsp://user:secret@host/x` → `rtsp://user:***@host/x`. Logs, status and MQTT only ever
/// see this form.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_plurals_are_suggested_and_strangers_are_not() {
        assert_eq!(edit_distance("stall_timeout_second", "stall_timeout_seconds"), 1);
        assert_eq!(closest("fsp", ["fps", "labels", "min_score"]), Some("fps"));
        assert_eq!(closest("cars", ["car", "bus"]), Some("car"));
        assert_eq!(closest("OpenVio", ["cuda", "openvino"]), Some("openvino"));
        assert_eq!(closest("colour", ["fps", "labels"]), None);
        assert_eq!(closest("ab", ["cd"]), None, "two edits rewrite a two-letter word");
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_uri("rtsp://admin:hunter2@10.0.0.5:554/s1"), "rtsp://admin:***@10.0.0.5:554/s1");
        assert_eq!(redact_uri("rtsp://admin@cam/s1"), "rtsp://admin@cam/s1");
        assert_eq!(redact_uri("file:///tmp/a@b.mp4"), "file:///tmp/a@b.mp4");
        assert_eq!(redact_uri("rtsp://cam/p@th"), "rtsp://cam/p@th");
        assert_eq!(redact_uri("not a uri"), "not a uri");
    }

    #[test]
    fn long_values_are_cut_to_a_recognisable_start_and_their_length() {
        let uri = format!("/etc/lookout/{}", "x".repeat(10_000_000));
        let m = shorten(&format!("{uri} does not exist; check the path")).into_owned();
        assert_eq!(m, format!("/etc/lookout/{}… (10000013 characters) does not exist; check the path", "x".repeat(35)));
        let m = shorten(&format!("invalid type: string \"{}\", expected u32", "z".repeat(5000))).into_owned();
        assert!(m.len() < 120 && m.ends_with("(5003 characters) expected u32"), "{m}");
        // Many short words: the start and the advice at the end are kept.
        let m = shorten(&format!("`{}` is not a label; use one of the model's", "a b ".repeat(100_000))).into_owned();
        assert!(
            m.len() < 1100
                && m.starts_with("`a b")
                && m.ends_with("use one of the model's")
                && m.contains("characters left out"),
            "{m}"
        );
        // Short messages, and long paths under the limit, are left alone.
        let path = format!("/var/lib/lookout/{}/model.onnx", "m".repeat(60));
        assert_eq!(shorten(&path), path.as_str());
        assert!(matches!(shorten("must be at least 1"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn problems_are_keyed_under_their_table() {
        assert_eq!(Problem::new("fps", "m").under("detect").key, "detect.fps");
        assert_eq!(Problem::new("[1].polygon", "m").under("zones").key, "zones[1].polygon");
        assert_eq!(Problem::new("", "m").under("motion").key, "motion");
        assert_eq!(Problem::new("x", "m").under("").key, "x");
    }
}
