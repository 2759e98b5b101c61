//! How log fields are written: one record, one line.
//!
//! GStreamer's error texts carry newlines (`…/GstRTSPSrc:source:\nCould not receive message.`),
//! and tracing's default field formatter writes them as they are: the second half of the record
//! then stands on a line of its own, with no timestamp or level, and a reader of the journal
//! or a log shipper takes it for a separate record. Here every field value and the message
//! have their line breaks written as `\n` and `\r`.

use std::borrow::Cow;
use std::fmt::Write as _;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;

/// `text` with its line breaks escaped; borrowed when it has none.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(['\n', '\r']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace('\r', "\\r").replace('\n', "\\n"))
}

/// The field formatter for `tracing_subscriber::fmt().fmt_fields(…)`: as the default one
/// (`message` bare, then `key=value`, space-separated), with every value on one line.
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        let text = one_line(&text);
        if field.name() == "message" { write!(writer, "{text}") } else { write!(writer, "{}={text}", field.name()) }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_escaped_and_plain_text_is_left_alone() {
        assert_eq!(
            one_line("Could not read.\nCould not receive message. (Parse error)\r\n"),
            "Could not read.\\nCould not receive message. (Parse error)\\r\\n"
        );
        assert!(matches!(one_line("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn a_record_with_a_newline_in_a_field_is_one_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields())
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(camera = "door", reason = %"gstrtspsrc.c: source:\nCould not receive message.", n = 3, "camera\nreconnecting");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(
                r#"camera\nreconnecting camera="door" reason=gstrtspsrc.c: source:\nCould not receive message. n=3"#
            ),
            "{text}"
        );
    }
}
