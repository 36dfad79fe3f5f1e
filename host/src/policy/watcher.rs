//! Watches the policy folder and reloads what changed. Events are debounced
//! so a file written in several steps is read once it settles.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::registry::{PolicyRegistry, policy_name};

/// Quiet period after the last event before reloading. A slow, non-atomic copy
/// keeps producing events and so keeps postponing the reload.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Keeps the watcher alive; dropping it stops watching.
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl PolicyWatcher {
    pub fn start(registry: Arc<PolicyRegistry>) -> Result<Self, notify::Error> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) => {
                    for path in &event.paths {
                        if let Some(name) = policy_name(path) {
                            let _ = tx.send(name);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "policy folder watch error"),
            })?;
        watcher.watch(registry.dir(), RecursiveMode::NonRecursive)?;
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut names = BTreeSet::from([first]);
                // Collect the burst that usually follows one file write.
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(n)) => {
                            names.insert(n);
                        }
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                for name in names {
                    let registry = registry.clone();
                    let _ = tokio::task::spawn_blocking(move || registry.reload(&name)).await;
                }
            }
        });
        Ok(Self { _watcher: watcher })
    }
}
