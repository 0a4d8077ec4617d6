//! Counting outcomes and printing the figures of a scenario.
//!
//! Every scenario prints one line per backend that starts with `FIGURE:`, then the scenario
//! and backend, then `name=value` pairs, so that a run's figures can be collected with
//! `grep '^FIGURE:'` (nextest shows a test's output with `--no-capture`).

use std::collections::HashMap;
use std::fmt;

use cache_core::ErrorKind;

/// Errors counted by kind.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    kinds: HashMap<ErrorKind, u64>,
}

impl Tally {
    /// No errors yet.
    pub fn new() -> Tally {
        Tally::default()
    }

    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        *self.kinds.entry(kind).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Tally) {
        for (kind, n) in &other.kinds {
            *self.kinds.entry(*kind).or_default() += n;
        }
    }

    /// Errors counted.
    pub fn total(&self) -> u64 {
        self.kinds.values().sum()
    }

    /// Errors of `kind`.
    pub fn count(&self, kind: ErrorKind) -> u64 {
        self.kinds.get(&kind).copied().unwrap_or(0)
    }

    /// The kinds counted that are not in `allowed`.
    pub fn outside(&self, allowed: &[ErrorKind]) -> Vec<ErrorKind> {
        self.kinds
            .keys()
            .filter(|k| !allowed.contains(k))
            .copied()
            .collect()
    }
}

impl fmt::Display for Tally {
    /// `Timeout:12,Connection:3`, most frequent first; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kinds.is_empty() {
            return f.write_str("none");
        }
        let mut kinds: Vec<(String, u64)> = self
            .kinds
            .iter()
            .map(|(k, n)| (format!("{k:?}"), *n))
            .collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let text: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        f.write_str(&text.join(","))
    }
}

/// The figures of one scenario on one backend, printed as one `FIGURE:` line.
#[derive(Debug, Clone)]
pub struct Figures {
    scenario: String,
    backend: String,
    items: Vec<(String, String)>,
}

impl Figures {
    /// Figures of `scenario` on `backend`.
    pub fn new(scenario: &str, backend: &str) -> Figures {
        Figures {
            scenario: scenario.to_owned(),
            backend: backend.to_owned(),
            items: Vec::new(),
        }
    }

    /// Adds `name=value`.
    pub fn add(mut self, name: &str, value: impl fmt::Display) -> Figures {
        self.items.push((name.to_owned(), value.to_string()));
        self
    }

    /// Prints the line on standard output.
    pub fn print(&self) {
        println!("{self}");
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FIGURE: {} {}", self.scenario, self.backend)?;
        for (name, value) in &self.items {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// A duration in milliseconds with one decimal, for figures.
pub fn millis(d: std::time::Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_and_figures_format() {
        let mut t = Tally::new();
        assert_eq!(t.to_string(), "none");
        t.add(ErrorKind::Timeout);
        t.add(ErrorKind::Timeout);
        t.add(ErrorKind::Connection);
        assert_eq!(t.to_string(), "Timeout:2,Connection:1");
        assert_eq!(t.total(), 3);
        assert_eq!(
            t.outside(&[ErrorKind::Timeout]),
            vec![ErrorKind::Connection]
        );
        let line = Figures::new("stall", "redis")
            .add("calls", 3)
            .add("errors", &t);
        assert_eq!(
            line.to_string(),
            "FIGURE: stall redis calls=3 errors=Timeout:2,Connection:1"
        );
    }
}
