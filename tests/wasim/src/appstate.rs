//! App state sync: every collection the client asks for exists and is
//! empty at the version it already has, so the critical sync completes
//! and the client reports `Connected`.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{attr, child, children, result_to};

pub fn answer(request: &Node) -> Node {
    let collections = child(request, "sync")
        .map(|sync| {
            children(sync, "collection")
                .map(|c| {
                    NodeBuilder::new("collection")
                        .attr("name", attr(c, "name").unwrap_or_default())
                        .attr("version", attr(c, "version").unwrap_or_else(|| "0".into()))
                        .build()
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    result_to(request)
        .children([NodeBuilder::new("sync").children(collections).build()])
        .build()
}
