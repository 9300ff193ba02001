//! Prometheus' text exposition format (version 0.0.4), which Prometheus, Fly's scraper and
//! `promtool check metrics` all read. Written here rather than by a client library: the Rust
//! client of the Prometheus project writes OpenMetrics, whose counter naming `promtool check
//! metrics` reads as a different family; and the hot path's counts live in per-thread copies
//! that a registry's own counters would replace with shared ones.

use std::fmt::Write as _;

/// The text of one scrape, family by family.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// Labels of one sample, as name and value.
pub type Labels<'a> = Vec<(&'a str, &'a str)>;

/// Counts per bucket (not cumulative; one more than the bounds, for past the last) and the
/// sum of what was observed.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.len() != bounds.len() + 1 {
            self.counts = vec![0; bounds.len() + 1];
        }
        let bucket = bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }
}

impl Exposition {
    pub fn counter<'a, V: Value>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, V)>,
    ) {
        self.family(name, help, "counter");
        for (labels, value) in samples {
            self.sample(name, &labels, &value.text());
        }
    }

    pub fn gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) {
        self.family(name, help, "gauge");
        for (labels, value) in samples {
            self.sample(name, &labels, &number(value));
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, bounds: &[f64], histogram: &Histogram) {
        self.family(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (at, bound) in bounds.iter().enumerate() {
            cumulative += histogram.counts.get(at).copied().unwrap_or(0);
            self.sample(
                &bucket,
                &vec![("le", &number(*bound))],
                &cumulative.to_string(),
            );
        }
        cumulative += histogram.counts.get(bounds.len()).copied().unwrap_or(0);
        self.sample(&bucket, &vec![("le", "+Inf")], &cumulative.to_string());
        self.sample(&format!("{name}_sum"), &vec![], &number(histogram.sum));
        self.sample(&format!("{name}_count"), &vec![], &cumulative.to_string());
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &Labels<'_>, value: &str) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (at, (label, text)) in labels.iter().enumerate() {
                if at > 0 {
                    self.out.push(',');
                }
                let text = text
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                let _ = write!(self.out, "{label}=\"{text}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A sample's value: a count, or seconds and the like.
pub trait Value {
    fn text(&self) -> String;
}

impl Value for u64 {
    fn text(&self) -> String {
        self.to_string()
    }
}

impl Value for f64 {
    fn text(&self) -> String {
        number(*self)
    }
}

/// A float as Prometheus reads it (`+Inf`, `NaN`, or the shortest decimal that reads back).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_histograms_are_cumulative() {
        let mut out = Exposition::default();
        out.gauge(
            "x_state",
            "A help text\nover two lines.",
            [(vec![("name", "a \"quoted\" \\ value")], 1.5)],
        );
        let mut histogram = Histogram::default();
        for value in [0.5, 2.0, 2.0, 9.0] {
            histogram.observe(&[1.0, 5.0], value);
        }
        out.histogram("x_seconds", "Durations.", &[1.0, 5.0], &histogram);
        assert_eq!(
            out.finish(),
            "# HELP x_state A help text\\nover two lines.\n# TYPE x_state gauge\n\
             x_state{name=\"a \\\"quoted\\\" \\\\ value\"} 1.5\n\
             # HELP x_seconds Durations.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"1\"} 1\nx_seconds_bucket{le=\"5\"} 3\n\
             x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 13.5\nx_seconds_count 4\n"
        );
    }
}
