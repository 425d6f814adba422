//! Keys held in memory only, for tests of the real client that need no
//! database. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::wacore::store::InMemoryBackend;

use super::BackendSource;
use crate::engine::EngineError;

#[derive(Default)]
pub struct MemoryBackends {
    backends: Mutex<HashMap<Uuid, Arc<InMemoryBackend>>>,
}

#[async_trait::async_trait]
impl BackendSource for MemoryBackends {
    fn backend(&self, instance_id: Uuid) -> Arc<dyn Backend> {
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        backends.entry(instance_id).or_default().clone()
    }

    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError> {
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        backends.remove(&instance_id);
        Ok(())
    }
}
