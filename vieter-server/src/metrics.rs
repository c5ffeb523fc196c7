//! Prometheus metrics: requests by route, status and duration; uploads; packages and sizes per
//! arch-repo (computed when scraped).

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    uploads: HistogramVec,
    packages: IntGaugeVec,
    repo_bytes: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("vieter_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new("vieter_http_request_duration_seconds", "HTTP request durations by route")
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
            &["route", "method"],
        )?;
        let uploads = HistogramVec::new(
            HistogramOpts::new(
                "vieter_publish_duration_seconds",
                "Time to add an uploaded package (parse + db)",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0]),
            &[],
        )?;
        let packages =
            IntGaugeVec::new(Opts::new("vieter_repo_packages", "Packages per arch-repo"), &["repo", "arch"])?;
        let repo_bytes = IntGaugeVec::new(
            Opts::new("vieter_repo_size_bytes", "Sum of package file sizes per arch-repo"),
            &["repo", "arch"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(uploads.clone()))?;
        registry.register(Box::new(packages.clone()))?;
        registry.register(Box::new(repo_bytes.clone()))?;
        Ok(Metrics { registry, requests, durations, uploads, packages, repo_bytes })
    }

    /// Records one finished request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.durations.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
    }

    /// Records one successful publish.
    pub fn observe_upload(&self, elapsed: Duration) {
        self.uploads.with_label_values(&[] as &[&str]).observe(elapsed.as_secs_f64());
    }

    /// Sets the per-arch-repo gauges (called at scrape time).
    pub fn set_repo(&self, repo: &str, arch: &str, packages: u64, bytes: u64) {
        self.packages.with_label_values(&[repo, arch]).set(packages as i64);
        self.repo_bytes.with_label_values(&[repo, arch]).set(bytes as i64);
    }

    /// Forgets every per-arch-repo gauge (before setting the current ones).
    pub fn reset_repos(&self) {
        self.packages.reset();
        self.repo_bytes.reset();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!("encoding metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The method label of a request: one of a fixed set, so that invented methods (anyone can send
/// `FOO /`) cannot grow the metrics without bound.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// The route template of a request path, so labels stay few.
pub fn route_of(method: &str, path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        (_, ["health"]) => "/health",
        (_, ["api", "v1", "metrics"]) => "/api/v1/metrics",
        (_, ["api", "v1", "openapi.json"]) => "/api/v1/openapi.json",
        (_, ["api", "v1", "keys", ..]) => "/api/v1/keys",
        (_, ["api", "v1", "repos"]) => "/api/v1/repos",
        (_, ["api", "v1", "repos", _, _, "packages"]) => "/api/v1/repos/{repo}/{arch}/packages",
        (_, ["api", "v1", "repos", _, _, "packages", _]) => "/api/v1/repos/{repo}/{arch}/packages/{name}",
        (_, ["api", "v1", rest @ ..]) => match rest.first() {
            Some(&"targets") => "/api/v1/targets",
            Some(&"jobs") => "/api/v1/jobs",
            Some(&"agents") => "/api/v1/agents",
            Some(&"aur") => "/api/v1/aur",
            Some(&"logs") => "/api/v1/logs",
            _ => "/api/v1/other",
        },
        ("POST", [_, "publish"]) => "/{repo}/publish",
        ("DELETE", [_]) => "/{repo}",
        ("DELETE", [_, _]) => "/{repo}/{arch}",
        ("DELETE", [_, _, _]) => "/{repo}/{arch}/{pkgname}",
        ("GET" | "HEAD", [_, _, file]) if file.ends_with(".sig") => "/{repo}/{arch}/{signature}",
        ("GET" | "HEAD", [_, _, file]) if file.ends_with(".db") || file.contains(".db.tar") => {
            "/{repo}/{arch}/{db}"
        }
        ("GET" | "HEAD", [_, _, file]) if file.ends_with(".files") || file.contains(".files.tar") => {
            "/{repo}/{arch}/{files}"
        }
        ("GET" | "HEAD", [_, _, _]) => "/{repo}/{arch}/{package}",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templated() {
        assert_eq!(route_of("GET", "/core/x86_64/core.db"), "/{repo}/{arch}/{db}");
        assert_eq!(route_of("GET", "/core/x86_64/core.db.sig"), "/{repo}/{arch}/{signature}");
        assert_eq!(
            route_of("GET", "/core/x86_64/foo-1-1-x86_64.pkg.tar.zst.sig"),
            "/{repo}/{arch}/{signature}"
        );
        assert_eq!(route_of("GET", "/api/v1/keys"), "/api/v1/keys");
        assert_eq!(route_of("GET", "/core/x86_64/foo-1-1-x86_64.pkg.tar.zst"), "/{repo}/{arch}/{package}");
        assert_eq!(route_of("POST", "/core/publish"), "/{repo}/publish");
        assert_eq!(route_of("DELETE", "/core/x86_64"), "/{repo}/{arch}");
        assert_eq!(
            route_of("GET", "/api/v1/repos/core/x86_64/packages/foo"),
            "/api/v1/repos/{repo}/{arch}/packages/{name}"
        );
        assert_eq!(route_of("POST", "/api/v1/aur/resolve"), "/api/v1/aur");
        assert_eq!(route_of("GET", "/api/v1/logs/3/content"), "/api/v1/logs");
        assert_eq!(route_of("GET", "/api/v1/nothing"), "/api/v1/other");
    }

    #[test]
    fn methods_are_a_fixed_set() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("DELETE"), "DELETE");
        assert_eq!(method_label("FOO"), "other");
        assert_eq!(method_label("get"), "other");
        assert_eq!(route_of("FOO", "/a/b/c/d/e"), "other");
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new().unwrap();
        m.observe_request("/health", "GET", 200, Duration::from_millis(1));
        m.set_repo("core", "x86_64", 3, 1000);
        let text = m.render();
        assert!(
            text.contains("vieter_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("vieter_repo_packages{arch=\"x86_64\",repo=\"core\"} 3"), "{text}");
    }
}
