//! Answers to the client's IQs. Whatever is not modelled gets an empty
//! result, which the client treats as "nothing to report".

use wacore_binary::Node;

use crate::nodes::{attr, child, result_to};
use crate::session::Session;

pub fn handle(session: &mut Session, node: &Node) {
    let kind = attr(node, "type").unwrap_or_default();
    let xmlns = attr(node, "xmlns").unwrap_or_default();
    match (kind.as_str(), xmlns.as_str()) {
        // Answers to our own IQs (pair-device ack, pair-success signature).
        ("result", _) | ("error", _) => {
            if child(node, "pair-device-sign").is_some() {
                session.finish_pairing(node);
            }
        }
        _ => session.reply(result_to(node).build()),
    }
}
