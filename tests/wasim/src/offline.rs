//! The server's offline queue: a message stanza stays queued for its device
//! until the device acknowledges it (a delivery receipt or a message ack),
//! and whatever is still queued is delivered again when the device next
//! goes active, as WhatsApp does after a client died before acknowledging.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{SERVER, attr, child};
use crate::session::Session;
use crate::world::{SimEvent, State};

/// Keeps `stanza` (message `id`) for `phone:device` until acknowledged.
pub fn queue(state: &mut State, phone: &str, device: u16, id: &str, stanza: &Node) {
    state
        .unacked
        .entry((phone.to_owned(), device))
        .or_default()
        .push((id.to_owned(), stanza.clone()));
}

/// A receipt or ack from the device: the messages it names leave the queue.
pub fn acknowledged(session: &Session, node: &Node) {
    let Some((phone, device)) = session.me.clone() else {
        return;
    };
    if node.tag == "ack" && attr(node, "class").as_deref() != Some("message") {
        return;
    }
    // Aggregated receipts name the rest of their messages in a list.
    let mut ids: Vec<String> = attr(node, "id").into_iter().collect();
    if let Some(list) = child(node, "list") {
        ids.extend(
            list.children()
                .unwrap_or_default()
                .iter()
                .filter_map(|item| attr(item, "id")),
        );
    }
    let world = &session.shared.world;
    let mut state = world.lock();
    let Some(queue) = state.unacked.get_mut(&(phone.clone(), device)) else {
        return;
    };
    let before = queue.len();
    queue.retain(|(id, _)| !ids.contains(id));
    let removed: Vec<String> = ids.into_iter().take(before - queue.len()).collect();
    drop(state);
    for id in removed {
        world.emit(SimEvent::MessageAcked {
            phone: phone.clone(),
            device,
            id,
        });
    }
}

/// What is still queued for the device, marked as offline delivery, then
/// the end-of-offline marker with their count.
pub fn redeliver(session: &Session) {
    let queued = match &session.me {
        Some((phone, device)) => session
            .shared
            .world
            .lock()
            .unacked
            .get(&(phone.clone(), *device))
            .cloned()
            .unwrap_or_default(),
        None => Vec::new(),
    };
    for (_, stanza) in &queued {
        let mut again = stanza.clone();
        again.attrs.insert("offline", "1".to_string());
        session.reply(again);
    }
    session.reply(
        NodeBuilder::new("ib")
            .attr("from", SERVER)
            .children([NodeBuilder::new("offline")
                .attr("count", queued.len().to_string())
                .build()])
            .build(),
    );
}
