//! Request metrics in the Prometheus text format: a counter per method,
//! route template and status, and a latency histogram per route template.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// The server's request metrics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counts one request.
    pub(crate) fn record(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        let histogram = inner.latency.entry(route.to_owned()).or_default();
        histogram.count += 1;
        histogram.sum += seconds;
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
    }

    /// The metrics as Prometheus text, with the given gauges appended.
    pub(crate) fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP stroom_http_requests_total HTTP requests served, by method, route and status.\n");
        out.push_str("# TYPE stroom_http_requests_total counter\n");
        for ((method, route, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "stroom_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        out.push_str("# HELP stroom_http_request_duration_seconds Time to answer a request, by route.\n");
        out.push_str("# TYPE stroom_http_request_duration_seconds histogram\n");
        for (route, h) in &inner.latency {
            let route = escape(route);
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "stroom_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "stroom_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "stroom_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "stroom_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record("GET", "/v1/routes", 200, Duration::from_micros(300));
        metrics.record("GET", "/v1/routes", 200, Duration::from_millis(3));
        metrics.record("GET", "/v1/routes", 403, Duration::from_millis(30));
        let text = metrics.render(&[("stroom_forecast_runs", "Forecast runs in memory.", 2.0)]);
        assert!(
            text.contains("stroom_http_requests_total{method=\"GET\",route=\"/v1/routes\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("stroom_http_requests_total{method=\"GET\",route=\"/v1/routes\",status=\"403\"} 1"));
        assert!(text.contains("stroom_http_request_duration_seconds_bucket{route=\"/v1/routes\",le=\"0.0005\"} 1"));
        assert!(text.contains("stroom_http_request_duration_seconds_bucket{route=\"/v1/routes\",le=\"0.005\"} 2"));
        assert!(text.contains("stroom_http_request_duration_seconds_bucket{route=\"/v1/routes\",le=\"+Inf\"} 3"));
        assert!(text.contains("stroom_forecast_runs 2"));
    }
}
