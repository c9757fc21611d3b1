//! `htgate replay`: requests from an Apache access log sent to the running
//! Apache and to an htgate serving the same document roots, side by side,
//! every difference reported per site (terminal, JSON, one HTML page).
//!
//! Bounded for use against production: only GET and HEAD, never a body;
//! credentials (`Cookie`, `Authorization`) only with `with_credentials`;
//! a fixed number of requests in flight and a request rate; each answer
//! read within a time and size bound (`fetch.rs`).

mod compare;
mod fetch;
mod html;
mod log;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;

pub use compare::{differences, Answer, FieldDiff};
pub use fetch::{parse_origin, Target};
pub use html::render as render_html;
pub use log::{LogParser, LoggedRequest, Skip};

use crate::client::Client;

/// Headers that carry credentials: replayed only when asked.
const CREDENTIALS: [&str; 3] = ["cookie", "authorization", "proxy-authorization"];

/// How a log is replayed.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// A format name or a `LogFormat` string.
    pub format: String,
    /// The share of the log's requests replayed, in (0, 1].
    pub sample: f64,
    /// At most this many requests.
    pub max: Option<usize>,
    /// Replay `Cookie` and `Authorization` when the log has them.
    pub with_credentials: bool,
    /// The Host for lines that name none (a `combined` log).
    pub default_host: Option<String>,
    /// `%p` values that mean the request came over TLS.
    pub tls_ports: Vec<u16>,
    /// Requests in flight at once (each goes to both servers).
    pub concurrency: usize,
    /// Requests per second, at most (each to both servers).
    pub rate: f64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            format: "combined".into(),
            sample: 1.0,
            max: None,
            with_credentials: false,
            default_host: None,
            tls_ports: vec![443],
            concurrency: 4,
            rate: 50.0,
        }
    }
}

/// A request as replayed, for `htgate explain`.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub line: usize,
    pub method: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub host: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Replayed {
    /// The absolute URL (`https://host/path?query`).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.target)
    }
}

/// What `htgate explain` says of a request.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub text: String,
    /// The answer is a PHP script's.
    pub php: bool,
}

/// Explains a request in htgate's view (`None`: no site to explain with).
pub type Explainer = dyn Fn(&Replayed) -> Option<Explanation> + Send + Sync;

/// One request whose answers differ.
#[derive(Debug, Clone)]
pub struct Difference {
    pub site: String,
    pub request: Replayed,
    pub apache: Answer,
    pub htgate: Answer,
    pub fields: Vec<FieldDiff>,
    /// Compared as a PHP page (status and type only).
    pub php: bool,
    pub explain: Option<String>,
}

/// Per site counts.
#[derive(Debug, Clone, Default)]
pub struct SiteStats {
    pub replayed: usize,
    pub differing: usize,
    /// Answers compared as PHP pages (status and type only).
    pub php_pages: usize,
}

/// The whole run.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub lines_read: usize,
    pub replayed: usize,
    /// Why lines were not replayed, with counts.
    pub skipped: BTreeMap<String, usize>,
    pub sites: BTreeMap<String, SiteStats>,
    pub differences: Vec<Difference>,
    /// Requests whose logged credentials were dropped (or, with
    /// `with_credentials`, replayed).
    pub credentials: usize,
    pub with_credentials: bool,
    pub apache: String,
    pub htgate: String,
}

/// Progress, after each request.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub differences: usize,
}

/// Deterministic sampling: the same log and rate replay the same lines
/// (the golden-ratio sequence spreads picks evenly over the log).
fn sampled(index: usize, sample: f64) -> bool {
    if sample >= 1.0 {
        return true;
    }
    let x = (index as f64 * 0.618_033_988_749_894_9).fract();
    x < sample
}

fn is_php_path(target: &str) -> bool {
    let path = target
        .split('?')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    path.ends_with(".php") || path.contains(".php/")
}

impl ReplayReport {
    /// Sites ranked by difference count (then by name).
    pub fn ranked_sites(&self) -> Vec<(&String, &SiteStats)> {
        let mut v: Vec<_> = self.sites.iter().collect();
        v.sort_by(|a, b| b.1.differing.cmp(&a.1.differing).then(a.0.cmp(b.0)));
        v
    }

    pub fn to_json(&self) -> Value {
        json!({
            "apache": self.apache, "htgate": self.htgate,
            "lines_read": self.lines_read, "replayed": self.replayed,
            "skipped": self.skipped,
            "credentials": {"requests": self.credentials, "replayed": self.with_credentials},
            "sites": self.ranked_sites().iter().map(|(n, s)| json!({
                "site": n, "replayed": s.replayed, "differing": s.differing,
                "php_pages": s.php_pages})).collect::<Vec<_>>(),
            "differences": self.differences.iter().map(|d| json!({
                "site": d.site, "line": d.request.line, "method": d.request.method,
                "url": d.request.url(), "php": d.php,
                "fields": d.fields.iter().map(|f| json!({"field": f.field,
                    "apache": f.apache, "htgate": f.htgate})).collect::<Vec<_>>(),
                "apache": d.apache.to_json(), "htgate": d.htgate.to_json(),
                "explain": d.explain})).collect::<Vec<_>>(),
        })
    }

    /// The terminal summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "replayed {} requests of {} log lines against {} (apache) and {} (htgate)\n",
            self.replayed, self.lines_read, self.apache, self.htgate
        );
        for (why, n) in &self.skipped {
            s.push_str(&format!("  skipped {n}: {why}\n"));
        }
        if self.credentials > 0 {
            if self.with_credentials {
                s.push_str(&format!(
                    "  WARNING: {} requests were replayed WITH the logged cookies or credentials\n",
                    self.credentials
                ));
            } else {
                s.push_str(&format!(
                    "  {} requests were replayed without their logged cookies/credentials (--with-credentials replays them)\n",
                    self.credentials
                ));
            }
        }
        for (site, st) in self.ranked_sites() {
            s.push_str(&format!(
                "  {site}: {} requests, {} differ{}\n",
                st.replayed,
                st.differing,
                if st.php_pages > 0 {
                    format!(
                        " ({} PHP pages: status and type compared only)",
                        st.php_pages
                    )
                } else {
                    String::new()
                }
            ));
        }
        for d in &self.differences {
            s.push_str(&format!(
                "DIFF {} line {}: {} {}\n",
                d.site,
                d.request.line,
                d.request.method,
                d.request.url()
            ));
            for f in &d.fields {
                s.push_str(&format!(
                    "    {:<16}  apache {}, htgate {}\n",
                    f.field, f.apache, f.htgate
                ));
            }
        }
        s.push_str(&format!(
            "{} requests, {} differences\n",
            self.replayed,
            self.differences.len()
        ));
        s
    }
}

/// Turns log lines into the requests to replay (sampling, the bound,
/// credentials, host and scheme), counting what is skipped.
pub fn plan(
    lines: &[String],
    opts: &ReplayOptions,
    report: &mut ReplayReport,
) -> Result<Vec<Replayed>, String> {
    let parser = LogParser::new(&opts.format)?;
    report.with_credentials = opts.with_credentials;
    let mut out = Vec::new();
    let skip = |why: String, report: &mut ReplayReport| {
        *report.skipped.entry(why).or_insert(0) += 1;
    };
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        report.lines_read += 1;
        if opts.max.is_some_and(|m| out.len() >= m) {
            skip("past --max".into(), report);
            continue;
        }
        if !sampled(i, opts.sample) {
            skip("not sampled (--sample)".into(), report);
            continue;
        }
        let logged = match parser.parse(i + 1, line) {
            Ok(r) => r,
            Err(Skip::Malformed) => {
                skip("line does not match the log format".into(), report);
                continue;
            }
            Err(Skip::Method(m)) => {
                skip(
                    format!("method {m} (only GET and HEAD are replayed)"),
                    report,
                );
                continue;
            }
            Err(Skip::NoRequest) => {
                skip("no request line".into(), report);
                continue;
            }
        };
        let header_host = logged
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone());
        let Some(host) = header_host
            .or(logged.vhost.clone())
            .or(opts.default_host.clone())
        else {
            skip("no host (give --host for a log without %v)".into(), report);
            continue;
        };
        let host = host.to_ascii_lowercase();
        let tls = logged.port.is_some_and(|p| opts.tls_ports.contains(&p));
        let mut headers = Vec::new();
        let mut had_credentials = false;
        for (n, v) in logged.headers {
            if n.eq_ignore_ascii_case("host") {
                continue;
            }
            if CREDENTIALS.contains(&n.to_ascii_lowercase().as_str()) {
                had_credentials = true;
                if !opts.with_credentials {
                    continue;
                }
            }
            headers.push((n, v));
        }
        if had_credentials {
            report.credentials += 1;
        }
        out.push(Replayed {
            line: logged.line,
            method: logged.method,
            scheme: if tls { "https" } else { "http" },
            host,
            target: logged.target,
            headers,
        });
    }
    Ok(out)
}

/// Sends one request to one target.
async fn ask(client: &Client, t: &Target, r: &Replayed) -> Answer {
    let tls = r.scheme == "https";
    let host_only = r.host.rsplit_once(':').map_or(r.host.as_str(), |(h, p)| {
        if p.parse::<u16>().is_ok() {
            h
        } else {
            r.host.as_str()
        }
    });
    let Some(address) = t.address(tls) else {
        return Answer {
            error: Some(format!("{} has no {} address", t.name, r.scheme)),
            ..Answer::default()
        };
    };
    let data = fetch::request_bytes(&r.method, &r.target, &r.host, &r.headers);
    let resp = fetch::fetch(client, address, tls, host_only, &data, r.method == "HEAD").await;
    Answer::of(&resp, host_only, &t.ports())
}

/// Replays `requests` against both targets.
pub async fn run(
    requests: Vec<Replayed>,
    apache: &Target,
    htgate: &Target,
    opts: &ReplayOptions,
    explain: &Explainer,
    report: &mut ReplayReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) {
    report.apache = apache.addresses();
    report.htgate = htgate.addresses();
    report.with_credentials = opts.with_credentials;
    let client = Client::new();
    let rate = opts.rate.max(0.1);
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    // After a stall (slow answers), go on at the rate, never in a burst
    // to catch up: a replay may run against production.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticker = Arc::new(Mutex::new(interval));
    let total = requests.len();
    let mut stream = futures_util::stream::iter(requests)
        .map(|r| {
            let (client, ticker) = (&client, ticker.clone());
            async move {
                ticker.lock().await.tick().await;
                let (a, h) = tokio::join!(ask(client, apache, &r), ask(client, htgate, &r));
                (r, a, h)
            }
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut done = 0;
    let mut found = Vec::new();
    // A day of traffic repeats its URLs: each distinct request is
    // explained once.
    let mut explained_cache: std::collections::HashMap<String, Option<Explanation>> =
        std::collections::HashMap::new();
    while let Some((r, a, h)) = stream.next().await {
        done += 1;
        report.replayed += 1;
        let site = r.host.clone();
        let mut php = is_php_path(&r.target) || a.powered_by_php || h.powered_by_php;
        let mut fields = differences(&a, &h, php);
        let mut explained = None;
        if !fields.is_empty() {
            let key = format!("{} {} {:?}", r.method, r.url(), r.headers);
            explained = explained_cache
                .entry(key)
                .or_insert_with(|| explain(&r))
                .clone();
            if let Some(e) = &explained {
                if e.php && !php {
                    php = true;
                    fields = differences(&a, &h, true);
                }
            }
        }
        let st = report.sites.entry(site.clone()).or_default();
        st.replayed += 1;
        if php {
            st.php_pages += 1;
        }
        if !fields.is_empty() {
            st.differing += 1;
            found.push(Difference {
                site,
                request: r,
                apache: a,
                htgate: h,
                fields,
                php,
                explain: explained.map(|e| e.text),
            });
        }
        progress(Progress {
            done,
            total,
            differences: found.len(),
        });
    }
    found.sort_by(|x, y| {
        x.site
            .cmp(&y.site)
            .then(x.request.line.cmp(&y.request.line))
    });
    report.differences = found;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` plain GETs for `a.test`: `/0`, `/1`, …
    fn gets(n: usize) -> Vec<Replayed> {
        (0..n)
            .map(|i| Replayed {
                line: i + 1,
                method: "GET".into(),
                scheme: "http",
                host: "a.test".into(),
                target: format!("/{i}"),
                headers: Vec::new(),
            })
            .collect()
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_host_is_the_logged_header_then_the_vhost_then_the_default() {
        let fmt = r#"%v %h "%r" %>s "%{Host}i""#;
        let lines = vec![
            r#"vhost.test 1.2.3.4 "GET /a HTTP/1.1" 200 "Header.Test""#.to_string(),
            r#"vhost.test 1.2.3.4 "GET /b HTTP/1.1" 200 "-""#.to_string(),
            r#"- 1.2.3.4 "GET /c HTTP/1.1" 200 "-""#.to_string(),
        ];
        let opts = ReplayOptions {
            format: fmt.into(),
            default_host: Some("default.test".into()),
            ..Default::default()
        };
        let reqs = plan(&lines, &opts, &mut ReplayReport::default()).expect("plan");
        let hosts: Vec<&str> = reqs.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts, vec!["header.test", "vhost.test", "default.test"]);
        assert!(
            reqs.iter().all(|r| r.headers.is_empty()),
            "Host is not sent twice"
        );
    }

    /// A server that counts connections open at once and answers after a
    /// pause.
    async fn counting_server(
        peak: Arc<AtomicUsize>,
        arrivals: Arc<Mutex<Vec<std::time::Instant>>>,
    ) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let open = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (open, peak, arrivals) = (open.clone(), peak.clone(), arrivals.clone());
                tokio::spawn(async move {
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    arrivals.lock().await.push(std::time::Instant::now());
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_and_rate_are_bounded() {
        let (peak, arrivals) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let a = counting_server(peak.clone(), arrivals.clone()).await;
        let h = counting_server(
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::new())),
        )
        .await;
        let target = |name: &str, addr: String| Target {
            name: name.into(),
            http: Some(addr),
            https: None,
        };
        let reqs = gets(20);
        let opts = ReplayOptions {
            concurrency: 2,
            rate: 50.0,
            ..Default::default()
        };
        let mut report = ReplayReport::default();
        let explain = |_: &Replayed| None;
        let mut progress = |_: Progress| {};
        run(
            reqs,
            &target("apache", a),
            &target("htgate", h),
            &opts,
            &explain,
            &mut report,
            &mut progress,
        )
        .await;
        assert_eq!(report.replayed, 20);
        assert!(report.differences.is_empty());
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "at most 2 in flight, saw {}",
            peak.load(Ordering::SeqCst)
        );
        let times = arrivals.lock().await.clone();
        let span = times
            .iter()
            .max()
            .copied()
            .zip(times.iter().min().copied())
            .map(|(x, y)| x - y)
            .unwrap_or_default();
        // 20 requests at 50 a second: the last starts 19 ticks (380 ms)
        // after the first.
        assert!(
            span >= Duration::from_millis(340),
            "requests spread over {span:?}"
        );
    }

    /// After a slow answer the replay goes on at its rate, not in a burst
    /// that makes up for the lost ticks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_burst_after_a_stall() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = arrivals.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = l.accept().await {
                n += 1;
                seen.lock().await.push(std::time::Instant::now());
                let pause = if n == 1 { 400 } else { 0 };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        let t = Target {
            name: "apache".into(),
            http: Some(addr),
            https: None,
        };
        let reqs = gets(6);
        // One target twice: every request arrives twice, back to back.
        let opts = ReplayOptions {
            concurrency: 1,
            rate: 20.0,
            ..Default::default()
        };
        let explain = |_: &Replayed| None;
        let mut progress = |_: Progress| {};
        run(
            reqs,
            &t,
            &t,
            &opts,
            &explain,
            &mut ReplayReport::default(),
            &mut progress,
        )
        .await;
        let times = arrivals.lock().await.clone();
        assert_eq!(times.len(), 12);
        // Requests 2 to 6 come after the stall: four ticks of 50 ms apart
        // at least, not all at once.
        let span = times[11] - times[2];
        assert!(
            span >= Duration::from_millis(150),
            "after the stall: {span:?}"
        );
    }

    #[tokio::test]
    async fn an_answer_is_read_within_its_size_bound() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..40 {
                    if s.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        });
        let client = Client::new();
        let data = fetch::request_bytes("GET", "/", "a.test", &[]);
        let resp = fetch::fetch(&client, &addr, false, "a.test", &data, false).await;
        assert_eq!(resp.status, 200);
        assert!(
            resp.body.len() <= fetch::MAX_ANSWER_BYTES,
            "{}",
            resp.body.len()
        );
        assert!(resp.body.len() > fetch::MAX_ANSWER_BYTES / 2);
    }

    #[test]
    fn plan_samples_bounds_and_drops_credentials() {
        let fmt = r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{Cookie}i""#;
        let line = |i: usize, m: &str| {
            format!(
                r#"shop.test:{} 1.2.3.4 - - [07/Dec/2026:10:00:00 +0000] "{m} /p{i} HTTP/1.1" 200 1 "-" "sid=secret""#,
                if i % 2 == 0 { 80 } else { 443 }
            )
        };
        let mut lines: Vec<String> = (0..10).map(|i| line(i, "GET")).collect();
        lines.push(line(10, "POST"));
        let opts = ReplayOptions {
            format: fmt.into(),
            max: Some(4),
            ..Default::default()
        };
        let mut rep = ReplayReport::default();
        let reqs = plan(&lines, &opts, &mut rep).expect("plan");
        assert_eq!(reqs.len(), 4);
        assert_eq!((reqs[0].scheme, reqs[1].scheme), ("http", "https"));
        assert!(reqs.iter().all(|r| r.headers.is_empty()), "cookies dropped");
        assert_eq!(rep.credentials, 4);
        assert!(rep
            .summary()
            .contains("4 requests were replayed without their logged cookies"));
        assert_eq!(rep.skipped.get("past --max"), Some(&7));

        let opts = ReplayOptions {
            format: fmt.into(),
            with_credentials: true,
            sample: 0.5,
            ..Default::default()
        };
        let mut rep = ReplayReport::default();
        let reqs = plan(&lines, &opts, &mut rep).expect("plan");
        assert!((3..=7).contains(&reqs.len()), "{}", reqs.len());
        assert!(reqs
            .iter()
            .all(|r| r.headers == vec![("Cookie".to_string(), "sid=secret".to_string())]));
        assert!(
            rep.summary()
                .contains("WARNING: 5 requests were replayed WITH the logged cookies"),
            "{}",
            rep.summary()
        );
        let again = plan(&lines, &opts, &mut ReplayReport::default()).expect("plan");
        assert_eq!(
            reqs.iter().map(|r| r.line).collect::<Vec<_>>(),
            again.iter().map(|r| r.line).collect::<Vec<_>>()
        );
    }
}
