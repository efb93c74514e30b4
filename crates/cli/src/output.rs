//! What the command line shows besides reports: progress on a terminal, the JSON-or-text
//! choice, undelivered notifications, and the early check that an output can be written.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vqa_notify::WebhookStats;

use crate::args::Format;

/// A bar over `duration` seconds of input, or a spinner when the length is unknown; none
/// when stderr is not a terminal or `hidden`.
pub fn input_bar(duration: Option<f64>, hidden: bool) -> Option<ProgressBar> {
    if hidden || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match duration {
        Some(d) => {
            let bar = ProgressBar::new((d * 1000.0) as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {percent:>3}%  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        }
        None => ProgressBar::new_spinner(),
    };
    bar.set_message("analysing");
    Some(bar)
}

/// A ticking bar or spinner with `template`, when stderr is a terminal.
pub fn ticking(template: &str, length: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match length {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// Prints `value` as pretty JSON, or as the text `render` makes of it.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    render: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Text => print!("{}", render(value)),
    }
    Ok(())
}

/// Says on stderr which notification destinations failed to deliver, and how many.
pub fn report_undelivered(stats: &[(String, WebhookStats)]) {
    for (name, s) in stats {
        if s.failed > 0 {
            eprintln!(
                "vqa: {name}: {} of {} notifications not delivered",
                s.failed,
                s.failed + s.delivered
            );
        }
    }
}

/// An error about `input`, prefixed with its name as every message shows it (credentials
/// hidden): the one place the binary names the input in an error.
pub fn about_input(input: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", vqa_deploy_ecs::shown(input))
}

/// Fails early, before a long analysis, if the report could not be written.
pub fn check_writable(path: &Path, flag: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{}: the directory {} does not exist; create it or choose another {flag}",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}
