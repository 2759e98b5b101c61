//! Line numbers for config errors: serde and the `config` crate report a key path
//! (`zones[1].polygon`) but not where it sits in the file, and an operator editing a long
//! camera file over SSH wants `pipelines/door.toml:14:` like a compiler gives. Pure: text in,
//! line out; the caller reads the file.

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `zones[1].polygon` → `zones`, 1, `polygon`. `None` for what is not a key path (the
/// collision check's `(file name)`).
fn steps(key: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map(|(n, r)| (n, Some(r))).unwrap_or((part, None));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            return None;
        }
        out.push(Step::Key(name));
        while let Some(r) = rest {
            let (index, after) = r.split_once(']')?;
            out.push(Step::Index(index.parse().ok()?));
            rest = after.strip_prefix('[');
            if rest.is_none() && !after.is_empty() {
                return None;
            }
        }
    }
    Some(out)
}

/// The 1-based line of `key` in the TOML `text`: where the key is written (for an array
/// element, where the element starts). `None` when the text does not parse or the key is not
/// written in it (a value that came from a default or the environment).
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let steps = steps(key)?;
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    let mut at = None;
    for step in steps {
        match (step, value) {
            (Step::Key(name), None | Some(DeValue::Table(_))) => {
                if let Some(DeValue::Table(t)) = value {
                    table = t;
                }
                let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
                at = Some(k.span().start);
                value = Some(v.get_ref());
            }
            (Step::Index(i), Some(DeValue::Array(items))) => {
                let item = items.get(i)?;
                at = Some(item.span().start);
                value = Some(item.get_ref());
            }
            _ => return None,
        }
    }
    at.map(|offset| line_at(text, offset))
}

/// A TOML syntax error as `(line, column, message)`, 1-based; `None` when the text parses.
pub fn syntax_error(text: &str) -> Option<(usize, usize, String)> {
    let e = DeTable::parse(text).err()?;
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    Some((line_at(text, offset), column, e.message().trim().to_string()))
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMERA: &str = "\
# a comment
uri = \"rtsp://cam/1\"

[detect]
fps = 5
labels = [\"person\",
  \"unicorn\"]

[[zones]]
name = \"drive\"
polygon = [[0, 0], [1, 0], [1, 1]]

[[zones]]
name = \"door\"
polygon = [[0, 0], [1, 0]]

[objects.filters.car]
min_area = 2
";

    #[test]
    fn finds_plain_nested_indexed_and_array_of_table_keys() {
        assert_eq!(line_of(CAMERA, "uri"), Some(2));
        assert_eq!(line_of(CAMERA, "detect.fps"), Some(5));
        assert_eq!(line_of(CAMERA, "detect.labels"), Some(6));
        assert_eq!(line_of(CAMERA, "detect.labels[1]"), Some(7));
        assert_eq!(line_of(CAMERA, "zones[1].polygon"), Some(15));
        assert_eq!(line_of(CAMERA, "zones[0].name"), Some(10));
        assert_eq!(line_of(CAMERA, "objects.filters.car.min_area"), Some(18));
    }

    #[test]
    fn dotted_keys_are_found_where_they_are_written() {
        assert_eq!(line_of("gateway_id = \"g\"\nmqtt.port = 0\n", "mqtt.port"), Some(2));
    }

    #[test]
    fn keys_not_in_the_file_and_non_paths_have_no_line() {
        assert_eq!(line_of(CAMERA, "detect.min_score"), None);
        assert_eq!(line_of(CAMERA, "zones[2].polygon"), None);
        assert_eq!(line_of(CAMERA, "uri.x"), None);
        assert_eq!(line_of(CAMERA, "(file name)"), None);
        assert_eq!(line_of(CAMERA, ""), None);
        assert_eq!(line_of("fps = = 5", "fps"), None);
    }

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let (line, column, message) = syntax_error("uri = \"x\"\n[detect]\nfps = = 5\n").unwrap();
        assert_eq!((line, column), (3, 7));
        assert!(message.contains('='), "{message}");
        assert_eq!(syntax_error(CAMERA), None);
    }
}
