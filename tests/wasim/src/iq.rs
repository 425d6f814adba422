//! Answers to the client's IQs. Whatever is not modelled gets an empty
//! result, which the client treats as "nothing to report".

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

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
        ("set", "md") if child(node, "link_code_companion_reg").is_some() => {
            if let Some(reg) = child(node, "link_code_companion_reg") {
                crate::pair_code::companion_iq(session, node, reg);
            }
        }
        ("set", "passive") => {
            session.reply(result_to(node).build());
            if child(node, "active").is_some() {
                // Leaving passive mode starts offline delivery; the client
                // waits for its end before it reports Connected.
                crate::offline::redeliver(session);
            }
        }
        (_, "w:g2") => crate::groups::handle(session, node),
        ("set", "w:sync:app:state") => {
            let phone = session.me.as_ref().map(|(p, _)| p.clone());
            let answer =
                crate::appstate::answer(&session.shared.world.lock(), phone.as_deref(), node);
            session.reply(answer);
        }
        ("set", "encrypt") => crate::prekeys::upload(session, node),
        ("get", "encrypt") => {
            let answer = crate::prekeys::fetch(&mut session.shared.world.lock(), node);
            session.reply(answer);
        }
        ("get", "usync") => {
            let answer = crate::usync::answer(&session.shared.world.lock(), node);
            session.reply(answer);
        }
        // Media hosts: the simulated mmg host, which the gateway's test
        // build sends to the simulator's HTTP side.
        ("set", "w:m") => session.reply(
            result_to(node)
                .children([NodeBuilder::new("media_conn")
                    .attr("auth", "sim-media-auth")
                    .attr("ttl", "3600")
                    .attr("auth_ttl", "3600")
                    .attr("max_buckets", "12")
                    .children([NodeBuilder::new("host")
                        .attr("hostname", "mmg.whatsapp.net")
                        .build()])
                    .build()])
                .build(),
        ),
        ("get", "blocklist") => session.reply(
            result_to(node)
                .children([NodeBuilder::new("list").build()])
                .build(),
        ),
        // Props, privacy and the like: the asked-for element, empty.
        ("get", _) => match node.children().and_then(|c| c.first()) {
            Some(asked) => session.reply(
                result_to(node)
                    .children([NodeBuilder::new_dynamic(asked.tag.to_string()).build()])
                    .build(),
            ),
            None => session.reply(result_to(node).build()),
        },
        _ => session.reply(result_to(node).build()),
    }
}
