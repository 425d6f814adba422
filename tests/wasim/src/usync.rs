//! `usync` queries: is a number on WhatsApp (`contact`), its LID (`lid`)
//! and its devices (`devices`), answered from the simulator's accounts.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{attr, bytes, child, children, result_to};
use crate::world::State;

/// The user part of a JID or a `+number` contact: digits only.
fn user_of(raw: &str) -> String {
    raw.split(['@', ':'])
        .next()
        .unwrap_or_default()
        .trim_start_matches('+')
        .to_owned()
}

pub fn answer(state: &State, request: &Node) -> Node {
    let Some(usync) = child(request, "usync") else {
        return result_to(request).build();
    };
    let asked: Vec<String> = child(usync, "query")
        .and_then(|q| q.children())
        .map(|c| c.iter().map(|n| n.tag.to_string()).collect())
        .unwrap_or_default();
    let users = child(usync, "list")
        .map(|list| {
            children(list, "user")
                .map(|u| user_answer(state, u, &asked))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    result_to(request)
        .children([NodeBuilder::new("usync")
            .attr("sid", attr(usync, "sid").unwrap_or_default())
            .children([NodeBuilder::new("list").children(users).build()])
            .build()])
        .build()
}

fn user_answer(state: &State, user: &Node, asked: &[String]) -> Node {
    let contact = child(user, "contact")
        .and_then(bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let jid = attr(user, "jid");
    let number = contact
        .as_deref()
        .or(jid.as_deref())
        .map(user_of)
        .unwrap_or_default();
    let account = state.find_user(&number);
    let answer_jid = match (&jid, account) {
        (Some(j), _) => j.clone(),
        (None, Some(a)) => format!("{}@s.whatsapp.net", a.phone),
        (None, None) => format!("{number}@s.whatsapp.net"),
    };
    let mut protocols = Vec::new();
    for tag in asked {
        match (tag.as_str(), account) {
            ("contact", Some(_)) => {
                protocols.push(NodeBuilder::new("contact").attr("type", "in").build())
            }
            ("contact", None) => {
                protocols.push(NodeBuilder::new("contact").attr("type", "out").build())
            }
            ("lid", Some(a)) => protocols.push(
                NodeBuilder::new("lid")
                    .attr("val", format!("{}@lid", a.lid))
                    .build(),
            ),
            // Only the phone (device 0): companions of other accounts are
            // not advertised, so senders encrypt for the phone alone.
            ("devices", Some(_)) => protocols.push(
                NodeBuilder::new("devices")
                    .attr("version", "2")
                    .children([NodeBuilder::new("device-list")
                        .children([NodeBuilder::new("device").attr("id", "0").build()])
                        .build()])
                    .build(),
            ),
            _ => {}
        }
    }
    let mut builder = NodeBuilder::new("user").attr("jid", answer_jid);
    if let Some(a) = account {
        builder = builder.attr("pn_jid", format!("{}@s.whatsapp.net", a.phone));
    }
    builder.children(protocols).build()
}
