//! What goes to stderr and how it looks: tracing's diagnostics and the messages meant for the
//! person (or log collector) reading it.
//!
//! - `text` (default): tracing's human format, with colours only on a terminal and never when
//!   `NO_COLOR` is set (CI logs, `2> file`, Slurm and Kubernetes logs get plain lines); the
//!   messages for the reader keep their plain `error: <file>: <cause>` form.
//! - `json`: one JSON object per line ([`LogLine`]) for everything on stderr, diagnostics and
//!   messages alike, so cluster log collectors never see a line they cannot parse.
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human lines; colours only on a terminal without `NO_COLOR`.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, input, message, fields.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// How much tracing lets through, from `-q`/`-v` (`RUST_LOG` wins).
fn default_level(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    }
}

/// Installs the process's subscriber. Call once, first thing in `main`.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    FORMAT.get_or_init(|| format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level(verbose, quiet)));
    match format {
        LogFormat::Text => {
            let ansi = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .init();
        }
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLayer)
            .init(),
    }
}

/// Colours only for a terminal, and not when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// How serious a message for the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    fn level(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARN",
            Severity::Info => "INFO",
        }
    }
}

/// A message for the reader of stderr, shown whatever the verbosity: errors (with their cause
/// chain), stale outputs, the batch's progress. Text: `error: ` before errors, the causes on
/// `  caused by:` lines. JSON: one line, `input` when the message is about one, the causes as
/// `fields.causes`.
pub fn say(severity: Severity, input: Option<&str>, message: &str, causes: &[String]) {
    if json() {
        let mut fields = BTreeMap::new();
        if !causes.is_empty() {
            fields.insert("causes".to_string(), Value::from(causes.to_vec()));
        }
        write_line(&LogLine {
            timestamp: timestamp(),
            level: severity.level(),
            target: "framepipe",
            input: input.map(str::to_string),
            message: message.to_string(),
            fields,
        });
        return;
    }
    let mut text = match severity {
        Severity::Error => format!("error: {message}\n"),
        Severity::Warning | Severity::Info => format!("{message}\n"),
    };
    for cause in causes {
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    // One write: lines of parallel inputs do not interleave mid-message.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// An error and its `source()` chain through [`say`].
pub fn error(input: Option<&str>, error: &dyn std::error::Error) {
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    say(Severity::Error, input, &error.to_string(), &causes);
}

/// One line of `--log-format json`.
#[derive(Debug, Serialize)]
pub struct LogLine {
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The module that logged (tracing's target).
    pub target: &'static str,
    /// The input file the line is about: the event's `input` field, else the nearest enclosing
    /// span's; `null` for lines about the run as a whole.
    pub input: Option<String>,
    pub message: String,
    /// The event's other fields.
    pub fields: BTreeMap<String, Value>,
}

fn timestamp() -> String {
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    let mut s = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut s));
    s
}

fn write_line(line: &LogLine) {
    let mut text = serde_json::to_string(line).expect("a log line serializes");
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Fields of an event or span as JSON values.
#[derive(Default)]
struct Fields(BTreeMap<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

/// A span's recorded fields, kept in its extensions so events inside it can name their input.
struct SpanFields(BTreeMap<String, Value>);

/// Writes every event as a [`LogLine`].
struct JsonLayer;

impl<S> Layer<S> for JsonLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(stored) => stored.0.extend(fields.0),
            None => extensions.insert(SpanFields(fields.0)),
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        let message = match fields.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let input = fields.remove("input").or_else(|| {
            ctx.event_scope(event)?.find_map(|span| {
                span.extensions()
                    .get::<SpanFields>()
                    .and_then(|f| f.0.get("input").cloned())
            })
        });
        let meta = event.metadata();
        write_line(&LogLine {
            timestamp: timestamp(),
            level: meta.level().as_str(),
            target: meta.target(),
            input: input.map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            message,
            fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = timestamp();
        assert_eq!(t.len(), "2026-12-01T22:25:28.123456Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
