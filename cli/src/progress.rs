//! A progress bar on stderr for long runs, shown only when stderr is a
//! terminal (so logs and pipes stay clean).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: &'static str,
    total: usize,
    shown: bool,
    last_draw: Instant,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        let shown = std::io::stderr().is_terminal() && std::env::var_os("MICROVIT_NO_PROGRESS").is_none();
        Progress { label, total, shown, last_draw: Instant::now() - Duration::from_secs(1) }
    }

    /// Reports `done` items; redraws at most ten times a second.
    pub fn update(&mut self, done: usize) {
        if !self.shown || (self.last_draw.elapsed() < Duration::from_millis(100) && done < self.total) {
            return;
        }
        self.last_draw = Instant::now();
        const WIDTH: usize = 30;
        let filled = WIDTH * done / self.total.max(1);
        let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '.' }).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{} [{bar}] {done}/{}", self.label, self.total);
        let _ = err.flush();
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
