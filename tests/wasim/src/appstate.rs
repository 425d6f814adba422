//! App state sync: every collection the client asks for is answered at
//! the version it already has, with the patches after it when the phone
//! has any (see [`crate::appstate_seed`]); collections nobody seeded stay
//! empty, so the critical sync completes and the client reports
//! `Connected`.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{attr, child, children, result_to};
use crate::world::State;

pub fn answer(state: &State, phone: Option<&str>, request: &Node) -> Node {
    let app = phone.and_then(|p| state.app_state.get(p));
    let collections = child(request, "sync")
        .map(|sync| {
            children(sync, "collection")
                .map(|c| {
                    let name = attr(c, "name").unwrap_or_default();
                    let have: u64 = attr(c, "version").and_then(|v| v.parse().ok()).unwrap_or(0);
                    let patches = app
                        .and_then(|a| a.collections.get(&name))
                        .map(|c| c.patches.as_slice())
                        .unwrap_or_default();
                    let newer = patches.get(usize::try_from(have).unwrap_or(usize::MAX)..);
                    let node = NodeBuilder::new("collection").attr("name", name);
                    match newer {
                        Some(list) if !list.is_empty() => {
                            node.attr("version", patches.len().to_string())
                                .children([NodeBuilder::new("patches")
                                    .children(list.iter().map(|p| {
                                        NodeBuilder::new("patch").bytes(p.clone()).build()
                                    }))
                                    .build()])
                                .build()
                        }
                        _ => node.attr("version", have.to_string()).build(),
                    }
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    result_to(request)
        .children([NodeBuilder::new("sync").children(collections).build()])
        .build()
}
