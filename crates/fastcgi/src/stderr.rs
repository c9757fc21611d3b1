//! STDERR records: PHP's error output, logged line by line and never sent
//! to the client. Bounded: long lines are cut and a flood is cut off.

/// Longest line logged; the rest of the line is dropped.
const MAX_LINE: usize = 4096;
/// Most lines logged per request.
const MAX_LINES: usize = 200;

pub(crate) struct StderrLog {
    upstream: String,
    line: Vec<u8>,
    truncated: bool,
    lines: usize,
}

impl StderrLog {
    pub(crate) fn new(upstream: String) -> StderrLog {
        StderrLog {
            upstream,
            line: Vec::new(),
            truncated: false,
            lines: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (part, rest, ends_line) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            let room = MAX_LINE - self.line.len();
            if part.len() > room {
                self.truncated = true;
            }
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            if ends_line {
                self.emit();
            }
            data = rest;
        }
    }

    /// Log what is left (a last line without a newline).
    pub(crate) fn flush(&mut self) {
        if !self.line.is_empty() || self.truncated {
            self.emit();
        }
    }

    fn emit(&mut self) {
        self.lines += 1;
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        let cut = if self.truncated { " [truncated]" } else { "" };
        if self.lines <= MAX_LINES {
            tracing::warn!(target: "php", upstream = %self.upstream, "{text}{cut}");
        } else if self.lines == MAX_LINES + 1 {
            tracing::warn!(
                target: "php",
                upstream = %self.upstream,
                "more than {MAX_LINES} lines on stderr for one request; the rest is not logged"
            );
        }
        self.line.clear();
        self.truncated = false;
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> (usize, usize, bool) {
        (self.lines, self.line.len(), self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_records_and_bounds_them() {
        let mut log = StderrLog::new("unix:/x".into());
        log.push(b"PHP Warning: a");
        log.push(b"bc\nsecond\r\nthi");
        assert_eq!(log.state(), (2, 3, false));
        log.push(&vec![b'x'; MAX_LINE * 3]);
        assert_eq!(log.state(), (2, MAX_LINE, true));
        log.push(b"\n");
        assert_eq!(log.state(), (3, 0, false));
        log.push(b"tail");
        log.flush();
        assert_eq!(log.state(), (4, 0, false));
        for _ in 0..MAX_LINES * 2 {
            log.push(b"flood\n");
        }
        assert_eq!(log.state().0, 4 + MAX_LINES * 2);
    }
}
