//! A run's log (CMTrace lines, see `log::cmtrace`) as rows a console renders like CMTrace.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `info`, `warning` or `error` (CMTrace type 1, 2, 3).
    pub severity: &'static str,
    /// `HH:MM:SS.mmm` local time with the bias (`+000`: minutes to add for UTC).
    pub time: String,
    /// `MM-DD-YYYY`.
    pub date: String,
    pub component: String,
    pub thread: String,
    pub file: String,
    pub message: String,
}

const OPEN: &str = "<![LOG[";
const CLOSE: &str = "]LOG]!>";

fn attribute(attrs: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    attrs
        .find(&key)
        .map(|at| &attrs[at + key.len()..])
        .and_then(|rest| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .unwrap_or_default()
}

/// Every line of `text`; a message may span lines (it ends at its closing marker).
pub fn parse(text: &str) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else { break };
        let message = &after[..end];
        let tail = &after[end + CLOSE.len()..];
        let attrs_end = tail.find('>').unwrap_or(tail.len());
        let attrs = &tail[..attrs_end];
        lines.push(LogLine {
            severity: match attribute(attrs, "type").as_str() {
                "3" => "error",
                "2" => "warning",
                _ => "info",
            },
            time: attribute(attrs, "time"),
            date: attribute(attrs, "date"),
            component: attribute(attrs, "component"),
            thread: attribute(attrs, "thread"),
            file: attribute(attrs, "file"),
            message: message.to_string(),
        });
        rest = &tail[attrs_end..];
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmtrace_lines_become_rows_with_their_severity() {
        let at = chrono::Local::now();
        let text = [
            crate::log::cmtrace::line(
                "writing the image",
                at,
                "servicing",
                crate::log::cmtrace::Severity::Info,
                7,
                "run.rs:1",
            ),
            crate::log::cmtrace::line(
                "two\nlines",
                at,
                "library",
                crate::log::cmtrace::Severity::Error,
                8,
                "mod.rs:2",
            ),
        ]
        .concat();
        let rows = parse(&text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].message, "writing the image");
        assert_eq!(rows[0].severity, "info");
        assert_eq!(rows[0].component, "servicing");
        assert_eq!(rows[1].message, "two\nlines");
        assert_eq!(rows[1].severity, "error");
        assert_eq!(rows[1].thread, "8");
        assert_eq!(rows[1].file, "mod.rs:2");
    }
}
