//! Keeping a node in step with the store: for each prefix, watch, list
//! (the full state, applied as a snapshot), then apply events as they come;
//! when the connection is lost, back off and start again.  The watch is
//! opened before the listing so that nothing written in between is missed
//! (an event may then repeat what the listing showed: appliers are
//! idempotent).

use super::{Cluster, Event};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a node does with what it hears.
#[async_trait]
pub trait Apply: Send + Sync + 'static {
    /// The whole state under `prefix`, after every (re)connection.
    async fn snapshot(&self, prefix: &'static str, items: Vec<(String, Vec<u8>)>);
    /// One change under `prefix`.
    async fn event(&self, prefix: &'static str, event: Event);
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// One task per prefix; they end when the returned handles are aborted.
pub fn spawn(
    cluster: Arc<Cluster>,
    prefixes: &[&'static str],
    apply: Arc<dyn Apply>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let healthy = Arc::new(AtomicUsize::new(0));
    let total = prefixes.len();
    prefixes
        .iter()
        .map(|&prefix| {
            let (cluster, apply, healthy) = (cluster.clone(), apply.clone(), healthy.clone());
            tokio::spawn(async move {
                let mut retry = FIRST_RETRY;
                let mut reported = false;
                loop {
                    let store = cluster.store().clone();
                    let opened = async {
                        let watch = store.watch(prefix).await?;
                        let items = store.list(prefix).await?;
                        Ok::<_, super::StoreError>((watch, items))
                    }
                    .await;
                    match opened {
                        Ok((mut watch, items)) => {
                            apply.snapshot(prefix, items).await;
                            if healthy.fetch_add(1, Ordering::SeqCst) + 1 == total {
                                cluster.set_up(true);
                            }
                            retry = FIRST_RETRY;
                            reported = false;
                            let lost = loop {
                                match watch.next().await {
                                    Some(Ok(event)) => apply.event(prefix, event).await,
                                    Some(Err(e)) => break e.to_string(),
                                    None => break "the watch ended".to_string(),
                                }
                            };
                            healthy.fetch_sub(1, Ordering::SeqCst);
                            cluster.set_up(false);
                            tracing::warn!(target: "cluster", prefix, "lost the watch: {lost}");
                        }
                        Err(e) => {
                            cluster.set_up(false);
                            if !reported {
                                tracing::warn!(target: "cluster", prefix, "cannot watch the cluster store (retrying): {e}");
                                reported = true;
                            }
                        }
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            })
        })
        .collect()
}
