//! Small helpers over `wacore_binary::Node` for reading what the client
//! sent and building what the server answers.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent};

pub const SERVER: &str = "s.whatsapp.net";

pub fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

pub fn child<'a>(node: &'a Node, tag: &str) -> Option<&'a Node> {
    node.get_optional_child(tag)
}

pub fn children<'a>(node: &'a Node, tag: &'a str) -> impl Iterator<Item = &'a Node> {
    node.get_children_by_tag(tag)
}

pub fn bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

/// `<iq type="result" id=.. from="s.whatsapp.net">` answering `request`.
pub fn result_to(request: &Node) -> NodeBuilder {
    NodeBuilder::new("iq")
        .attr("type", "result")
        .attr("from", SERVER)
        .attr("id", attr(request, "id").unwrap_or_default())
}

/// A one-line description of a node for logs: tag, attributes, child tags.
pub fn describe(node: &Node) -> String {
    let attrs: Vec<String> = node
        .attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str()))
        .collect();
    let kids: Vec<String> = node
        .children()
        .map(|c| c.iter().map(describe).collect())
        .unwrap_or_default();
    format!("<{} {}>[{}]", node.tag, attrs.join(" "), kids.join(","))
}
