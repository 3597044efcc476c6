//! Progress of a long operation (an export, a hash, an upload) on stderr.

use std::io::IsTerminal;

/// Progress of a long operation on stderr, only when stderr is a terminal.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    shown_percent: Option<u64>,
    enabled: bool,
}

impl Progress {
    /// Shown only on a terminal, and only for more than 8 MiB: a short
    /// operation needs no progress, and a pipe wants no carriage returns.
    pub fn new(label: &'static str, total: u64) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            shown_percent: None,
            enabled: std::io::stderr().is_terminal() && total > (8 << 20),
        }
    }

    /// Counts `n` more bytes done.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        let percent = self.done.saturating_mul(100) / self.total.max(1);
        if self.shown_percent != Some(percent) {
            self.shown_percent = Some(percent);
            eprint!("\r{}: {percent:>3}% ({} of {} MiB)", self.label, self.done >> 20, self.total >> 20);
        }
    }

    /// Ends the progress line; later calls do nothing.
    pub fn finish(&mut self) {
        if self.enabled && self.shown_percent.is_some() {
            eprintln!();
        }
        self.enabled = false;
    }
}
