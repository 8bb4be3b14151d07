//! A one-line progress bar on stderr (only when stderr is a terminal or EMBER_PROGRESS=1).

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    total: usize,
    start: Instant,
    enabled: bool,
    label: &'static str,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        let enabled =
            std::io::stderr().is_terminal() || std::env::var_os("EMBER_PROGRESS").is_some();
        Progress {
            total: total.max(1),
            start: Instant::now(),
            enabled,
            label,
        }
    }

    /// Shows `done` of `total` with a free-form status such as "ppl 36.6".
    pub fn update(&self, done: usize, status: &str) {
        if !self.enabled {
            return;
        }
        const WIDTH: usize = 30;
        let filled = WIDTH * done.min(self.total) / self.total;
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = if done > 0 {
            elapsed / done as f64 * (self.total - done.min(self.total)) as f64
        } else {
            0.0
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {done}/{} {status} ETA {eta:.0}s   ",
            self.label,
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.total
        );
        let _ = err.flush();
    }

    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
