//! A one-line progress bar on stderr: step, loss, tokens/s and ETA. On a terminal it redraws
//! in place; otherwise (logs, CI) it prints a line every `every` steps.
use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    total: usize,
    start_step: usize,
    started: Instant,
    tty: bool,
    every: usize,
    last_draw: Option<Instant>,
    quiet: bool,
}

/// `h:mm:ss` or `m:ss`.
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Progress {
    pub fn new(start_step: usize, total: usize, every: usize, quiet: bool) -> Self {
        Progress {
            total,
            start_step,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            every: every.max(1),
            last_draw: None,
            quiet,
        }
    }

    /// The bar for `step` (1-based count of steps done).
    pub fn line(&self, step: usize, loss: f32, lr: f32, tokens_per_s: f64) -> String {
        let width = 24;
        let frac = step as f64 / self.total.max(1) as f64;
        let filled = ((frac * width as f64) as usize).min(width);
        let done = step.saturating_sub(self.start_step).max(1) as f64;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = elapsed / done * self.total.saturating_sub(step) as f64;
        format!(
            "[{}{}] {step}/{} loss {loss:.4} lr {lr:.2e} {:.1}k tok/s ETA {}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.total,
            tokens_per_s / 1000.0,
            hms(eta)
        )
    }

    pub fn update(&mut self, step: usize, loss: f32, lr: f32, tokens_per_s: f64) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            // Redraw at most 10 times a second.
            let now = Instant::now();
            if step != self.total
                && self
                    .last_draw
                    .is_some_and(|t| now.duration_since(t).as_millis() < 100)
            {
                return;
            }
            self.last_draw = Some(now);
            let _ = write!(err, "\r\x1b[2K{}", self.line(step, loss, lr, tokens_per_s));
        } else if step.is_multiple_of(self.every) || step == self.total {
            let _ = writeln!(err, "{}", self.line(step, loss, lr, tokens_per_s));
        }
    }

    /// Prints a message on its own line without garbling the bar.
    pub fn message(&self, msg: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = writeln!(err, "\r\x1b[2K{msg}");
        } else {
            let _ = writeln!(err, "{msg}");
        }
    }

    pub fn finish(&self) {
        if self.tty && !self.quiet {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_loss_speed_and_eta() {
        let p = Progress::new(0, 100, 10, false);
        let l = p.line(50, 1.5, 1e-3, 12345.0);
        assert!(
            l.starts_with("[############------------] 50/100 loss 1.5000"),
            "{l}"
        );
        assert!(l.contains("12.3k tok/s") && l.contains("ETA 0:0"), "{l}");
        assert_eq!(hms(3725.0), "1:02:05");
    }
}
