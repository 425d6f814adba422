//! Number checks against WhatsApp's directory, remembered for a while so a
//! burst of sends to one number asks once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{EngineError, NumberInfo, Session};

#[derive(Clone)]
pub struct NumberCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<String, (NumberInfo, Instant)>>>,
}

impl NumberCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
    }

    /// Answers for `numbers` (E.164 digits), asking `session` only about
    /// those not remembered. Order follows `numbers`.
    pub async fn check(
        &self,
        session: &dyn Session,
        numbers: &[String],
    ) -> Result<Vec<NumberInfo>, EngineError> {
        let now = Instant::now();
        let mut known: HashMap<String, NumberInfo> = HashMap::new();
        let mut unknown = Vec::new();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
            for n in numbers {
                match entries.get(n) {
                    Some((info, _)) => {
                        known.insert(n.clone(), info.clone());
                    }
                    None if !unknown.contains(n) => unknown.push(n.clone()),
                    None => {}
                }
            }
        }
        if !unknown.is_empty() {
            let answers = session.check_numbers(&unknown).await?;
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for info in answers {
                entries.insert(info.phone_number.clone(), (info.clone(), now));
                known.insert(info.phone_number.clone(), info);
            }
        }
        Ok(numbers
            .iter()
            .map(|n| {
                known.get(n).cloned().unwrap_or(NumberInfo {
                    phone_number: n.clone(),
                    registered: false,
                    jid: None,
                    lid: None,
                })
            })
            .collect())
    }
}
