//! At-least-once inbound: the client acknowledges a message to WhatsApp's
//! server only after the gateway committed it (whatsapp-rust's
//! `InboundDurabilityHook`). A crash before the commit, or a commit that
//! fails, leaves the message unacknowledged: the server delivers it again
//! on the next connect and the client replays it from its buffered copy.

use std::sync::Arc;

use uuid::Uuid;
use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::client::Client;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::types::events::InboundMessage;

use super::engine::complete_party;
use super::translate;
use crate::engine::{Ack, EngineEvent, EventSink};

/// Hands each batch to the gateway's event lanes (so it keeps its place
/// among the instance's other events) and waits for their commit.
pub struct CommitFirst {
    pub instance_id: Uuid,
    pub sink: EventSink,
    /// The device's store: phone numbers of people named only by LID.
    pub lookups: Arc<dyn Backend>,
}

#[async_trait::async_trait]
impl InboundDurabilityHook for CommitFirst {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> whatsapp_rust::anyhow::Result<()> {
        let mut messages = translate::received(batch);
        if messages.is_empty() {
            return Ok(());
        }
        for m in &mut messages {
            complete_party(&*self.lookups, &mut m.from).await;
        }
        super::fault::point("inbound_before_commit");
        let (committed, outcome) = Ack::new();
        let event = EngineEvent::Messages {
            messages,
            committed,
        };
        if self.sink.send((self.instance_id, event)).await.is_err() {
            whatsapp_rust::anyhow::bail!("the gateway is stopping");
        }
        match outcome.await {
            Ok(true) => {
                super::fault::point("inbound_after_commit");
                Ok(())
            }
            _ => whatsapp_rust::anyhow::bail!("the gateway could not commit the messages"),
        }
    }
}
