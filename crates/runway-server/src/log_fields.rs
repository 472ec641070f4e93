//! The `pretty` format's fields, written with fewer formatting calls.
//!
//! `tracing-subscriber`'s `DefaultFields` writes every field as
//! `write!(w, "{}{}{:?}", italic.paint(name), dimmed.paint("="), value)`: two styled
//! strings, each of which formats an (empty, without ANSI) style prefix and suffix,
//! then the value. With six fields on the access line that is most of what an INFO
//! event costs. [`PlainFields`] writes the same text: when the writer has no ANSI
//! colours, a number, a boolean or a string field is written directly as
//! `name=value` (a string quoted as `{:?}` quotes it, unescaped when it needs no
//! escaping, through `{:?}` otherwise). Everything else — the message (which
//! `DefaultFields` sanitises of terminal escapes), errors, `r#` names, every field
//! when colours are on — goes to `DefaultFields`' own visitor, so the output is the
//! same in every case.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// A `FormatFields` that prints what `DefaultFields` prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            let mut visitor = DefaultVisitor::new(writer, true);
            fields.record(&mut visitor);
            return visitor.finish();
        }
        let mut visitor = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// No field written yet: the next one gets no leading space.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether `field` can take the direct path: a plain name, not the message.
    fn is_plain(field: &Field) -> bool {
        let name = field.name();
        name != "message" && !name.starts_with("r#")
    }

    /// `name=` (after a space unless first), then `value`.
    fn write_with(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let w = &mut self.writer;
        self.result = (|| {
            if !self.is_empty {
                w.write_char(' ')?;
            }
            w.write_str(field.name())?;
            w.write_char('=')?;
            value(w)
        })();
        self.is_empty = false;
    }

    /// Hands one field to `DefaultFields`' visitor.
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut inner = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut inner);
        self.result = inner.finish();
        self.is_empty = false;
    }
}

/// Whether `{:?}` of `s` is `s` in quotes: printable ASCII without `"` or `\`.
fn needs_no_escaping(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !Self::is_plain(field) {
            return self.delegate(|v| v.record_str(field, value));
        }
        self.write_with(field, |w| {
            if needs_no_escaping(value) {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !Self::is_plain(field) {
            return self.delegate(|v| v.record_u64(field, value));
        }
        self.write_with(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !Self::is_plain(field) {
            return self.delegate(|v| v.record_i64(field, value));
        }
        self.write_with(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !Self::is_plain(field) {
            return self.delegate(|v| v.record_bool(field, value));
        }
        self.write_with(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !Self::is_plain(field) {
            return self.delegate(|v| v.record_f64(field, value));
        }
        // `{:?}`, as `DefaultFields` prints floats (`1.0`, not `1`).
        self.write_with(field, |w| write!(w, "{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.delegate(|v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The fields part of each line that `emit` logs, through `fields`, with the
    /// timestamp, level and target cut off.
    fn lines<N>(fields: N, ansi: bool, emit: impl Fn()) -> Vec<String>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Captured::default();
        let make = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .compact()
            .without_time()
            .with_ansi(ansi)
            .fmt_fields(fields)
            .with_writer(move || make.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn every_kind_of_field() {
        tracing::info!(
            http.method = "GET",
            http.route = "/api/v1/jobs/{id}",
            http.status = 404_u16,
            duration_ms = 0.25,
            whole = 2.0,
            tiny = 0.000_01,
            negative = -3_i64,
            flag = true,
            request_id = "01JABCDEFGHJKMNPQRSTVWXYZ0",
            error.code = Some("not_found"),
            error.cause = None::<&str>,
            "request"
        );
        tracing::warn!(
            quoted = "say \"hi\"\\ \u{1b}[31mred\ttab é",
            r#type = "raw name",
            dbg = ?vec![1, 2],
            shown = %"display",
            "a message with \u{1b}[2J an escape and {} args",
            7
        );
        let err = Outer(std::io::Error::other("inner cause"));
        tracing::error!(error = &err as &(dyn std::error::Error + 'static), "failed");
        tracing::info!(only = 1_u64);
        tracing::info!("just a message");
    }

    #[test]
    fn plain_fields_print_exactly_what_default_fields_print() {
        let ours = lines(PlainFields, false, every_kind_of_field);
        let theirs = lines(DefaultFields::new(), false, every_kind_of_field);
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 5, "{ours:#?}");
        assert!(
            ours[0].contains(r#"request http.method="GET" http.route="/api/v1/jobs/{id}" http.status=404 duration_ms=0.25 whole=2.0"#),
            "{}",
            ours[0]
        );
        assert!(!ours[1].contains('\u{1b}'), "{}", ours[1]);
    }

    #[test]
    fn with_colours_plain_fields_still_print_what_default_fields_print() {
        let ours = lines(PlainFields, true, every_kind_of_field);
        let theirs = lines(DefaultFields::new(), true, every_kind_of_field);
        assert_eq!(ours, theirs);
    }
}
