//! The error log: tracing's events, to stderr or to `error_log`, at
//! `log_level` unless `RUST_LOG` says otherwise.
//!
//! Events carry what locates them: `.htaccess` problems their
//! `file:line:col`, and everything logged while a request runs
//! `request{site=… client=…}` (`context.rs`: config mode sets it per
//! request; Apache's error log names the client and the virtual host too).
//!
//! A file target goes through the log writer thread like the access log:
//! an event is formatted in memory and queued, never written by the
//! request's task, and the file is reopened on SIGUSR1 too.  The file and
//! the level can change at a configuration reload.

use super::writer::{self, Kind};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The level when neither `log_level` nor `RUST_LOG` is given.
pub(crate) const DEFAULT_LEVEL: &str = "warn";

/// Where events go now: `None` is stderr.
static TARGET: RwLock<Option<Arc<Path>>> = RwLock::new(None);

/// The installed filter, replaced when `log_level` changes.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn filter_for(level: Option<&str>) -> EnvFilter {
    if let Some(env) = rust_log() {
        if let Ok(f) = EnvFilter::builder().parse(&env) {
            return f;
        }
        eprintln!("htgate: RUST_LOG `{env}` is not a valid filter; using the configured level");
    }
    let wanted = level.unwrap_or(DEFAULT_LEVEL);
    EnvFilter::builder()
        .parse(wanted)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVEL))
}

/// Whether `level` is a filter tracing accepts (`info`,
/// `warn,htaccess=debug`, ...): the configuration check.
pub fn check_level(level: &str) -> Result<(), String> {
    // A bare word is a target at every level for tracing (`verbose` would
    // quietly mean "everything from a module named verbose"): only level
    // names may stand alone.
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for part in level.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !part.contains('=') && !LEVELS.iter().any(|l| part.eq_ignore_ascii_case(l)) {
            return Err(format!(
                "log_level `{level}`: `{part}` is not a level (off, error, warn, info, debug, trace) or a `target=level` directive"
            ));
        }
    }
    EnvFilter::builder()
        .parse(level)
        .map(drop)
        .map_err(|e| format!("log_level `{level}`: {e}"))
}

fn set_target(path: Option<&Path>) {
    let mut t = TARGET.write().unwrap_or_else(|p| p.into_inner());
    *t = path.map(Arc::from);
}

/// Installs the process's subscriber (once; later calls only apply the
/// settings).  `error_log` and `level` come from htgate.toml; quick mode
/// and the other commands pass `None`.
pub fn init(error_log: Option<&Path>, level: Option<&str>) {
    if FILTER.get().is_some() {
        apply(error_log, level);
        return;
    }
    set_target(error_log);
    let (filter, handle) = reload::Layer::new(filter_for(level));
    // Colours only for a person at a terminal, never into a file.
    let ansi = error_log.is_none() && std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .event_format(ErrorLogFormat)
        .with_writer(MakeEventWriter);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

/// A reload's settings: the new file and level (`RUST_LOG` still wins).
pub fn apply(error_log: Option<&Path>, level: Option<&str>) {
    let Some(handle) = FILTER.get() else {
        // Not our subscriber (tests, a library user): nothing to change.
        return;
    };
    set_target(error_log);
    if rust_log().is_none() {
        let _ = handle.reload(filter_for(level));
    }
}

/// tracing-subscriber's `Full` format (time, level, spans, target,
/// fields) with the request's `request{site=… client=…}:` after the level
/// (`context.rs` says why it is not a span).
struct ErrorLogFormat;

impl<S, N> FormatEvent<S, N> for ErrorLogFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ansi = writer.has_ansi_escapes();
        SystemTime.format_time(&mut writer)?;
        let level = *event.metadata().level();
        let colour = match level {
            tracing::Level::ERROR => "31",
            tracing::Level::WARN => "33",
            tracing::Level::INFO => "32",
            tracing::Level::DEBUG => "34",
            tracing::Level::TRACE => "35",
        };
        if ansi {
            write!(writer, " \x1b[{colour}m{level:>5}\x1b[0m ")?;
        } else {
            write!(writer, " {level:>5} ")?;
        }
        if let Some(r) = super::context::current() {
            write!(writer, "request{{site={} client={}}}: ", r.site, r.client)?;
        }
        if let Some(scope) = ctx.event_scope() {
            let mut any = false;
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{{{fields}}}")?;
                    }
                }
                writer.write_char(':')?;
                any = true;
            }
            if any {
                writer.write_char(' ')?;
            }
        }
        write!(writer, "{}: ", event.metadata().target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Hands out one [`EventWriter`] per event.
struct MakeEventWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeEventWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        let target = TARGET
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        EventWriter {
            target,
            buf: Vec::new(),
        }
    }
}

/// Collects one formatted event; queued (or written to stderr) when
/// dropped, so that an event is one write and never interleaves.
pub(crate) struct EventWriter {
    target: Option<Arc<Path>>,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        match &self.target {
            Some(path) => {
                writer::send(path, &buf, Kind::Error);
            }
            None => {
                let _ = std::io::stderr().write_all(&buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_checked() {
        assert!(check_level("info").is_ok());
        assert!(check_level("warn,htaccess=debug").is_ok());
        assert!(check_level("loud").is_err());
        assert!(check_level("htaccess=loud").is_err());
    }
}
