//! The `--stats` report: one human line or one JSON object, on stderr.

use std::fmt::Write;

use netrunner_tokio::{ExitStatus, Stats};

/// How the run ended, for the report.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The command's status.
    pub status: ExitStatus,
    /// The timeout fired.
    pub timed_out: bool,
    /// The output limit was reached.
    pub output_limited: bool,
    /// netrunner's own exit code.
    pub exit: i32,
    /// Output bytes (stdout and stderr) netrunner got through to its own
    /// streams.
    pub delivered: u64,
    /// netrunner's own reader went away before all output was delivered.
    pub output_lost: bool,
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON object on one line.
pub fn json(outcome: &Outcome, stats: &Stats) -> String {
    let null_or = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    format!(
        concat!(
            "{{\"exit\":{},\"status\":{},\"exit_code\":{},\"signal\":{},\"core_dumped\":{},",
            "\"timed_out\":{},\"output_limited\":{},\"output_lost\":{},\"delivered_bytes\":{},",
            "\"duration_secs\":{:.6},",
            "\"bytes_in\":{},\"bytes_out\":{},\"bytes_err\":{},\"reads\":{},\"writes\":{},",
            "\"user_secs\":{:.6},\"system_secs\":{:.6},\"max_rss_bytes\":{}}}"
        ),
        outcome.exit,
        json_string(&outcome.status.to_string()),
        null_or(outcome.status.code().map(|c| c.to_string())),
        null_or(outcome.status.signal().map(|s| json_string(s.name()))),
        outcome.status.core_dumped(),
        outcome.timed_out,
        outcome.output_limited,
        outcome.output_lost,
        outcome.delivered,
        stats.duration.as_secs_f64(),
        stats.bytes_in,
        stats.bytes_out,
        stats.bytes_err,
        stats.read_count,
        stats.write_count,
        stats.user_time.as_secs_f64(),
        stats.system_time.as_secs_f64(),
        stats.max_rss,
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// One line for people.
pub fn human(outcome: &Outcome, stats: &Stats) -> String {
    let mut ending = outcome.status.to_string();
    if outcome.timed_out {
        ending.push_str(", timed out");
    }
    if outcome.output_limited {
        ending.push_str(", output limit reached");
    }
    if outcome.output_lost {
        let _ = write!(
            ending,
            ", our reader went away after {} delivered",
            bytes(outcome.delivered)
        );
    }
    format!(
        "netrunner: {ending} after {:.3}s; in {}, out {}, err {}; cpu user {:.3}s sys {:.3}s; max rss {}",
        stats.duration.as_secs_f64(),
        bytes(stats.bytes_in),
        bytes(stats.bytes_out),
        bytes(stats.bytes_err),
        stats.user_time.as_secs_f64(),
        stats.system_time.as_secs_f64(),
        bytes(stats.max_rss),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(65536), "64.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
