//! Message stanzas from a device: acknowledged as the server does, recorded
//! so a test can make the recipient deliver or read them.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::attr;
use crate::session::{Session, now_secs};
use crate::world::{SentMessage, SimEvent};

pub fn from_device(session: &mut Session, node: &Node) {
    let id = attr(node, "id").unwrap_or_default();
    let to = attr(node, "to").unwrap_or_default();
    session.reply(
        NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id.clone())
            .attr("from", to.clone())
            .attr("t", now_secs().to_string())
            .build(),
    );
    let Some((phone, device)) = session.me.clone() else {
        return;
    };
    let recipient = to.split(['@', ':']).next().unwrap_or_default().to_owned();
    session.shared.world.lock().sent.insert(
        id.clone(),
        SentMessage {
            phone: phone.clone(),
            device,
            to: recipient.clone(),
        },
    );
    session.shared.world.emit(SimEvent::MessageSent {
        phone,
        id,
        to: recipient,
    });
}

/// Receipts and other stanzas the server only acknowledges.
pub fn acknowledge(session: &mut Session, node: &Node) {
    let mut ack = NodeBuilder::new("ack")
        .attr("class", node.tag.to_string())
        .attr("id", attr(node, "id").unwrap_or_default());
    if let Some(to) = attr(node, "to") {
        ack = ack.attr("from", to);
    }
    if let Some(kind) = attr(node, "type") {
        ack = ack.attr("type", kind);
    }
    session.reply(ack.build());
}
