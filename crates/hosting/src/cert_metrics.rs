//! Facts of one running config-mode server, read at each scrape: which
//! certificate each domain gets and how long it has left, and the ACME
//! manager's per-domain back-off.

use crate::certs::CertStore;
use arc_swap::ArcSwap;
use htgate_util::unix_now;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::Arc;

/// Registered in the admin listener's own registry.
pub(crate) struct ServerCollector {
    pub store: Arc<ArcSwap<CertStore>>,
    pub acme: Option<Arc<crate::acme::AcmeManager>>,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCollector").finish()
    }
}

/// One row per configured domain (and per name ordered on demand): the
/// certificate a handshake for it gets now.
pub(crate) struct CertRow {
    pub(crate) site: String,
    pub(crate) domain: String,
    pub(crate) source: &'static str,
    days: f64,
    /// It names the domain and is within its dates.
    pub(crate) valid: bool,
}

pub(crate) fn cert_rows(store: &CertStore, now: i64) -> Vec<CertRow> {
    let snap = store.snapshot();
    let mut rows = Vec::new();
    let on_demand = store.on_demand_names();
    for (i, site) in store.sites().iter().enumerate() {
        // Its listed domains, then the names it got on demand.
        let extra = on_demand.get(&i).map_or(&[][..], Vec::as_slice);
        for domain in site.domains.iter().chain(extra) {
            // A wildcard is judged by a name it stands for (as `cert list`).
            let probe = match domain.strip_prefix("*.") {
                Some(rest) => format!("any-name.{rest}"),
                None => domain.clone(),
            };
            let (served, source) = snap.choose(Some(&probe), now);
            rows.push(CertRow {
                site: site.name.clone(),
                domain: domain.clone(),
                source: match source {
                    crate::certs::CertSource::Uploaded => "uploaded",
                    crate::certs::CertSource::Automatic => "automatic",
                    crate::certs::CertSource::Shared => "shared",
                },
                // Days as a float: an alert can say "< 7" and still see
                // the last hours.
                days: (served.not_after - now) as f64 / 86_400.0,
                valid: served.covers(&probe) && served.valid_at(now),
            });
        }
    }
    rows
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = unix_now();
        let rows = cert_rows(&self.store.load(), now);
        {
            let mut family = encoder.encode_descriptor(
                "htgate_certificate_expiry_days",
                "Days until the certificate a handshake for the domain gets now expires (negative: expired)",
                None,
                MetricType::Gauge,
            )?;
            for r in &rows {
                let labels = [
                    ("site", r.site.as_str()),
                    ("domain", r.domain.as_str()),
                    ("source", r.source),
                ];
                ConstGauge::new(r.days).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "htgate_certificate_valid",
                "1 when the certificate served for the domain names it and is within its dates, else 0",
                None,
                MetricType::Gauge,
            )?;
            for r in &rows {
                let labels = [("site", r.site.as_str()), ("domain", r.domain.as_str())];
                ConstGauge::new(i64::from(r.valid)).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(acme) = &self.acme {
            let failing: Vec<_> = acme
                .status()
                .into_iter()
                .filter(|s| s.failures > 0)
                .collect();
            let mut family = encoder.encode_descriptor(
                "htgate_acme_consecutive_failures",
                "Failed ACME orders in a row for a domain (only domains that are failing)",
                None,
                MetricType::Gauge,
            )?;
            for s in &failing {
                let labels = [("domain", s.domain.as_str())];
                ConstGauge::new(i64::from(s.failures)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
