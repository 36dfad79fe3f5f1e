//! Query cancellation. Each client session gets a process id and secret
//! made up by Gatehouse; a `CancelRequest` carrying them is forwarded to
//! the upstream with the upstream's own key, which the client never sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;

/// The upstream side of one session's cancel key.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamKey {
    pub process_id: i32,
    pub secret: i32,
}

#[derive(Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<(i32, i32), UpstreamKey>>,
}

/// Removes the key from the registry when the session ends.
pub struct CancelHandle {
    registry: Arc<CancelRegistry>,
    pub process_id: i32,
    pub secret: i32,
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.registry
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.process_id, self.secret));
    }
}

impl CancelRegistry {
    /// Hands out a fresh client-facing key for `upstream`.
    pub fn register(self: &Arc<Self>, upstream: UpstreamKey) -> CancelHandle {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = rand::rng();
        loop {
            let key = (rng.random_range(1..i32::MAX), rng.random::<i32>());
            if let std::collections::hash_map::Entry::Vacant(v) = sessions.entry(key) {
                v.insert(upstream);
                return CancelHandle {
                    registry: self.clone(),
                    process_id: key.0,
                    secret: key.1,
                };
            }
        }
    }

    /// The upstream key for a client's cancel request, if it is genuine.
    pub fn lookup(&self, process_id: i32, secret: &[u8]) -> Option<UpstreamKey> {
        let secret: [u8; 4] = secret.try_into().ok()?;
        let secret = i32::from_be_bytes(secret);
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by both parts: the map hashes with a random key, so the
        // time a lookup takes says nothing useful about the secret.
        sessions.get(&(process_id, secret)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_and_expire_with_the_session() {
        let r = Arc::new(CancelRegistry::default());
        let h = r.register(UpstreamKey {
            process_id: 42,
            secret: 7,
        });
        let found = r.lookup(h.process_id, &h.secret.to_be_bytes()).unwrap();
        assert_eq!(found.process_id, 42);
        assert!(
            r.lookup(h.process_id, &(h.secret ^ 1).to_be_bytes())
                .is_none()
        );
        assert!(r.lookup(h.process_id, &[1, 2, 3]).is_none());
        let (pid, secret) = (h.process_id, h.secret);
        drop(h);
        assert!(r.lookup(pid, &secret.to_be_bytes()).is_none());
    }
}
