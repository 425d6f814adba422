//! Groups as the server keeps them: the `w:g2` IQs a client sends (create,
//! metadata, participants, settings, invite codes, join, leave, membership
//! requests) answered from the world, and the `w:gp2` notifications each
//! change sends to the online companions of everyone it concerns.

use std::collections::BTreeMap;

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{SERVER, attr, bytes, child, children, result_to};
use crate::server::Shared;
use crate::session::{Session, now_secs};
use crate::world::{SimEvent, State};

pub const GROUP_SERVER: &str = "g.us";

/// A member's rank in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Member,
    Admin,
    SuperAdmin,
}

impl Rank {
    fn wire(self) -> Option<&'static str> {
        match self {
            Rank::Member => None,
            Rank::Admin => Some("admin"),
            Rank::SuperAdmin => Some("superadmin"),
        }
    }

    fn is_admin(self) -> bool {
        self != Rank::Member
    }
}

/// One group: members are phone numbers.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub subject: String,
    pub subject_owner: String,
    pub subject_time: u64,
    pub creator: String,
    pub created: u64,
    /// (description id, body)
    pub description: Option<(String, String)>,
    pub announce: bool,
    pub locked: bool,
    pub ephemeral: u32,
    pub approval: bool,
    pub members: BTreeMap<String, Rank>,
    pub invite: String,
    /// Who asked to join (approval on), with when.
    pub requests: BTreeMap<String, u64>,
}

impl Group {
    pub fn jid(&self) -> String {
        format!("{}@{GROUP_SERVER}", self.id)
    }
}

/// The user part of a JID: digits (or the LID user) only.
pub fn user_of(jid: &str) -> &str {
    jid.split(['@', ':']).next().unwrap_or_default()
}

fn pn_jid(phone: &str) -> String {
    format!("{phone}@{SERVER}")
}

fn lid_of(state: &State, phone: &str) -> Option<String> {
    state.accounts.get(phone).map(|a| format!("{}@lid", a.lid))
}

/// A `<participant>` naming `phone` with its LID and rank.
fn participant(state: &State, phone: &str, rank: Option<Rank>) -> Node {
    let mut p = NodeBuilder::new("participant").attr("jid", pn_jid(phone));
    if let Some(lid) = lid_of(state, phone) {
        p = p.attr("lid", lid);
    }
    if let Some(kind) = rank.and_then(Rank::wire) {
        p = p.attr("type", kind);
    }
    p.build()
}

/// The `<group>` node of a metadata answer.
fn group_node(state: &State, g: &Group) -> Node {
    let mut kids: Vec<Node> = g
        .members
        .iter()
        .map(|(phone, rank)| participant(state, phone, Some(*rank)))
        .collect();
    if let Some((id, body)) = &g.description {
        kids.push(
            NodeBuilder::new("description")
                .attr("id", id.clone())
                .children([NodeBuilder::new("body")
                    .string_content(body.clone())
                    .build()])
                .build(),
        );
    }
    if g.locked {
        kids.push(NodeBuilder::new("locked").build());
    }
    if g.announce {
        kids.push(NodeBuilder::new("announcement").build());
    }
    if g.ephemeral > 0 {
        kids.push(
            NodeBuilder::new("ephemeral")
                .attr("expiration", g.ephemeral.to_string())
                .build(),
        );
    }
    if g.approval {
        kids.push(
            NodeBuilder::new("membership_approval_mode")
                .children([NodeBuilder::new("group_join").attr("state", "on").build()])
                .build(),
        );
    }
    NodeBuilder::new("group")
        .attr("id", g.id.clone())
        .attr("subject", g.subject.clone())
        .attr("s_o", pn_jid(&g.subject_owner))
        .attr("s_t", g.subject_time.to_string())
        .attr("creator", pn_jid(&g.creator))
        .attr("creation", g.created.to_string())
        .attr("addressing_mode", "pn")
        .attr("size", g.members.len().to_string())
        .children(kids)
        .build()
}

fn error_to(request: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("from", attr(request, "to").unwrap_or_else(|| SERVER.into()))
        .attr("id", attr(request, "id").unwrap_or_default())
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_owned())
            .build()])
        .build()
}

/// A change to tell members about: the action node, and who hears it
/// beyond the members after the change (the removed, the leaver).
struct Notice {
    group: String,
    actor: String,
    action: Node,
    also: Vec<String>,
    what: &'static str,
}

/// `<iq xmlns="w:g2">` from the device of `session`.
pub fn handle(session: &mut Session, request: &Node) {
    let Some((me, _device)) = session.me.clone() else {
        session.reply(error_to(request, 401, "not-authorized"));
        return;
    };
    let shared = session.shared.clone();
    let (answer, notices) = {
        let world = &shared.world;
        let next = world.next_id();
        let mut state = world.lock();
        answer(&mut state, &me, request, next)
    };
    session.reply(answer);
    for notice in notices {
        send_notice(&shared, notice);
    }
}

fn answer(state: &mut State, me: &str, request: &Node, next: u64) -> (Node, Vec<Notice>) {
    let kind = attr(request, "type").unwrap_or_default();
    let to = attr(request, "to").unwrap_or_default();
    let Some(action) = request.children().and_then(|c| c.first()) else {
        return (error_to(request, 400, "bad-request"), Vec::new());
    };
    let tag = action.tag.to_string();
    if to == GROUP_SERVER || to.is_empty() {
        return match (kind.as_str(), tag.as_str()) {
            ("get", "participating") => (participating(state, me, request), Vec::new()),
            ("set", "create") => create(state, me, request, action, next),
            ("set", "invite") => join(state, me, request, action),
            ("set", "leave") => leave(state, me, request, action),
            _ => (
                error_to(request, 501, "feature-not-implemented"),
                Vec::new(),
            ),
        };
    }
    let id = user_of(&to).to_owned();
    let Some(group) = state.groups.get(&id).cloned() else {
        return (error_to(request, 404, "item-not-found"), Vec::new());
    };
    let Some(rank) = group.members.get(me).copied() else {
        return (error_to(request, 403, "forbidden"), Vec::new());
    };
    let needs_admin = kind == "set" || tag == "invite" || tag == "membership_approval_requests";
    let admin_only = needs_admin && tag != "subject" && tag != "description";
    let may_edit_info = !group.locked || rank.is_admin();
    if (admin_only && !rank.is_admin()) || (!admin_only && needs_admin && !may_edit_info) {
        return (error_to(request, 401, "not-authorized"), Vec::new());
    }
    match (kind.as_str(), tag.as_str()) {
        ("get", "query") => {
            let node = group_node(state, &group);
            (result_to(request).children([node]).build(), Vec::new())
        }
        ("set", "add" | "remove" | "promote" | "demote") => {
            participants(state, me, request, action, &id)
        }
        ("get" | "set", "invite") => {
            let g = state.groups.get_mut(&id);
            let Some(g) = g else {
                return (error_to(request, 404, "item-not-found"), Vec::new());
            };
            let mut notices = Vec::new();
            if kind == "set" {
                g.invite = invite_code(next);
                notices.push(Notice {
                    group: id.clone(),
                    actor: me.to_owned(),
                    action: NodeBuilder::new("revoke").build(),
                    also: Vec::new(),
                    what: "revoke",
                });
            }
            let code = g.invite.clone();
            let node = NodeBuilder::new("invite").attr("code", code).build();
            (result_to(request).children([node]).build(), notices)
        }
        ("get", "membership_approval_requests") => {
            let list: Vec<Node> = group
                .requests
                .iter()
                .map(|(phone, at)| {
                    NodeBuilder::new("membership_approval_request")
                        .attr("jid", pn_jid(phone))
                        .attr("request_time", at.to_string())
                        .build()
                })
                .collect();
            let node = NodeBuilder::new("membership_approval_requests")
                .children(list)
                .build();
            (result_to(request).children([node]).build(), Vec::new())
        }
        ("set", "membership_requests_action") => requests_action(state, me, request, action, &id),
        ("set", _) => settings(state, me, request, action, &id),
        _ => (
            error_to(request, 501, "feature-not-implemented"),
            Vec::new(),
        ),
    }
}

fn participating(state: &State, me: &str, request: &Node) -> Node {
    let mut groups: Vec<&Group> = state
        .groups
        .values()
        .filter(|g| g.members.contains_key(me))
        .collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    let nodes: Vec<Node> = groups.into_iter().map(|g| group_node(state, g)).collect();
    result_to(request)
        .children([NodeBuilder::new("groups").children(nodes).build()])
        .build()
}

fn invite_code(next: u64) -> String {
    format!(
        "SimInvite{next:08}{:06X}",
        rand::random::<u32>() & 0xff_ffff
    )
}

/// The account a `<participant jid>` names (by number or LID), if on
/// WhatsApp.
fn phone_named(state: &State, jid: &str) -> Option<String> {
    state.find_user(user_of(jid)).map(|a| a.phone.clone())
}

fn create(
    state: &mut State,
    me: &str,
    request: &Node,
    action: &Node,
    next: u64,
) -> (Node, Vec<Notice>) {
    let now = now_secs();
    let id = format!("1203630{next:011}");
    let mut members = BTreeMap::new();
    members.insert(me.to_owned(), Rank::SuperAdmin);
    for p in children(action, "participant") {
        if let Some(phone) = attr(p, "jid").and_then(|j| phone_named(state, &j)) {
            members.entry(phone).or_insert(Rank::Member);
        }
    }
    let description = child(action, "description").and_then(|d| {
        let body = child(d, "body").and_then(bytes)?;
        Some((
            attr(d, "id").unwrap_or_else(|| format!("{next}")),
            String::from_utf8_lossy(body).into_owned(),
        ))
    });
    let group = Group {
        id: id.clone(),
        subject: attr(action, "subject").unwrap_or_default(),
        subject_owner: me.to_owned(),
        subject_time: now,
        creator: me.to_owned(),
        created: now,
        description,
        announce: false,
        locked: false,
        ephemeral: child(action, "ephemeral")
            .and_then(|e| attr(e, "expiration"))
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        approval: false,
        members,
        invite: invite_code(next),
        requests: BTreeMap::new(),
    };
    let node = group_node(state, &group);
    state.groups.insert(id.clone(), group);
    let notice = Notice {
        group: id,
        actor: me.to_owned(),
        action: NodeBuilder::new("create").children([node.clone()]).build(),
        also: Vec::new(),
        what: "create",
    };
    (result_to(request).children([node]).build(), vec![notice])
}

fn participants(
    state: &mut State,
    me: &str,
    request: &Node,
    action: &Node,
    id: &str,
) -> (Node, Vec<Notice>) {
    let tag = action.tag.to_string();
    let asked: Vec<String> = children(action, "participant")
        .filter_map(|p| attr(p, "jid"))
        .collect();
    let mut answers = Vec::new();
    let mut done = Vec::new();
    for jid in asked {
        let phone = phone_named(state, &jid);
        let Some(g) = state.groups.get_mut(id) else {
            break;
        };
        let error = match (tag.as_str(), phone) {
            ("add", None) => Some("404"),
            ("add", Some(p)) if g.members.contains_key(&p) => Some("409"),
            ("add", Some(p)) => {
                g.members.insert(p.clone(), Rank::Member);
                g.requests.remove(&p);
                done.push(p);
                None
            }
            (_, None) => Some("404"),
            (_, Some(p)) if !g.members.contains_key(&p) => Some("404"),
            ("remove", Some(p)) => {
                g.members.remove(&p);
                done.push(p);
                None
            }
            (promote, Some(p)) => {
                let rank = if promote == "promote" {
                    Rank::Admin
                } else {
                    Rank::Member
                };
                if let Some(r) = g.members.get_mut(&p)
                    && *r != Rank::SuperAdmin
                {
                    *r = rank;
                }
                done.push(p);
                None
            }
        };
        let mut node = NodeBuilder::new("participant").attr("jid", jid.clone());
        if let Some(code) = error {
            node = node.attr("error", code);
        }
        answers.push(node.build());
    }
    let mut notices = Vec::new();
    if !done.is_empty() {
        let people: Vec<Node> = done.iter().map(|p| participant(state, p, None)).collect();
        notices.push(Notice {
            group: id.to_owned(),
            actor: me.to_owned(),
            action: NodeBuilder::new_dynamic(tag.clone())
                .children(people)
                .build(),
            also: if tag == "remove" { done } else { Vec::new() },
            what: match tag.as_str() {
                "add" => "add",
                "remove" => "remove",
                "promote" => "promote",
                _ => "demote",
            },
        });
    }
    let node = NodeBuilder::new_dynamic(tag).children(answers).build();
    (result_to(request).children([node]).build(), notices)
}

fn settings(
    state: &mut State,
    me: &str,
    request: &Node,
    action: &Node,
    id: &str,
) -> (Node, Vec<Notice>) {
    let now = now_secs();
    let Some(g) = state.groups.get_mut(id) else {
        return (error_to(request, 404, "item-not-found"), Vec::new());
    };
    let tag = action.tag.to_string();
    let (notice, what): (Node, &'static str) = match tag.as_str() {
        "subject" => {
            let subject = bytes(action)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            g.subject = subject.clone();
            g.subject_owner = me.to_owned();
            g.subject_time = now;
            let node = NodeBuilder::new("subject")
                .attr("subject", subject)
                .attr("s_o", pn_jid(me))
                .attr("s_t", now.to_string())
                .build();
            (node, "subject")
        }
        "description" => {
            let prev = attr(action, "prev");
            let current = g.description.as_ref().map(|(i, _)| i.clone());
            if current.is_some() && prev != current {
                return (error_to(request, 409, "conflict"), Vec::new());
            }
            let new_id = attr(action, "id").unwrap_or_default();
            let body = child(action, "body")
                .and_then(bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let node = match (attr(action, "delete").as_deref(), body) {
                (Some("true"), _) | (_, None) => {
                    g.description = None;
                    NodeBuilder::new("description")
                        .attr("id", new_id)
                        .children([NodeBuilder::new("delete").build()])
                        .build()
                }
                (_, Some(body)) => {
                    g.description = Some((new_id.clone(), body.clone()));
                    NodeBuilder::new("description")
                        .attr("id", new_id)
                        .children([NodeBuilder::new("body").string_content(body).build()])
                        .build()
                }
            };
            (node, "description")
        }
        "locked" | "unlocked" => {
            g.locked = tag == "locked";
            (NodeBuilder::new_dynamic(tag.clone()).build(), "locked")
        }
        "announcement" | "not_announcement" => {
            g.announce = tag == "announcement";
            (NodeBuilder::new_dynamic(tag.clone()).build(), "announce")
        }
        "ephemeral" | "not_ephemeral" => {
            g.ephemeral = attr(action, "expiration")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let node = match g.ephemeral {
                0 => NodeBuilder::new("not_ephemeral").build(),
                s => NodeBuilder::new("ephemeral")
                    .attr("expiration", s.to_string())
                    .build(),
            };
            (node, "ephemeral")
        }
        "membership_approval_mode" => {
            let on = child(action, "group_join")
                .and_then(|j| attr(j, "state"))
                .is_some_and(|s| s == "on");
            g.approval = on;
            let node = NodeBuilder::new("membership_approval_mode")
                .children([NodeBuilder::new("group_join")
                    .attr("state", if on { "on" } else { "off" })
                    .build()])
                .build();
            (node, "approval")
        }
        _ => {
            return (
                error_to(request, 501, "feature-not-implemented"),
                Vec::new(),
            );
        }
    };
    let notice = Notice {
        group: id.to_owned(),
        actor: me.to_owned(),
        action: notice,
        also: Vec::new(),
        what,
    };
    (result_to(request).build(), vec![notice])
}

fn join(state: &mut State, me: &str, request: &Node, action: &Node) -> (Node, Vec<Notice>) {
    let code = attr(action, "code").unwrap_or_default();
    let Some(g) = state.groups.values_mut().find(|g| g.invite == code) else {
        return (error_to(request, 406, "not-acceptable"), Vec::new());
    };
    let jid = g.jid();
    let id = g.id.clone();
    if g.members.contains_key(me) {
        let node = NodeBuilder::new("group").attr("jid", jid).build();
        return (result_to(request).children([node]).build(), Vec::new());
    }
    if g.approval {
        g.requests.insert(me.to_owned(), now_secs());
        let node = NodeBuilder::new("membership_approval_request")
            .attr("jid", jid)
            .build();
        let notice = Notice {
            group: id,
            actor: me.to_owned(),
            action: NodeBuilder::new("membership_approval_request")
                .attr("request_method", "invite_link")
                .build(),
            also: vec![me.to_owned()],
            what: "request",
        };
        return (result_to(request).children([node]).build(), vec![notice]);
    }
    g.members.insert(me.to_owned(), Rank::Member);
    let person = participant(state, me, None);
    let notice = Notice {
        group: id,
        actor: me.to_owned(),
        action: NodeBuilder::new("add")
            .attr("reason", "invite")
            .children([person])
            .build(),
        also: Vec::new(),
        what: "join",
    };
    let node = NodeBuilder::new("group").attr("jid", jid).build();
    (result_to(request).children([node]).build(), vec![notice])
}

fn leave(state: &mut State, me: &str, request: &Node, action: &Node) -> (Node, Vec<Notice>) {
    let mut notices = Vec::new();
    for g in children(action, "group") {
        let id = attr(g, "id").unwrap_or_default();
        let id = user_of(&id).to_owned();
        let Some(group) = state.groups.get_mut(&id) else {
            return (error_to(request, 404, "item-not-found"), Vec::new());
        };
        if group.members.remove(me).is_none() {
            return (error_to(request, 403, "forbidden"), Vec::new());
        }
        let person = participant(state, me, None);
        notices.push(Notice {
            group: id,
            actor: me.to_owned(),
            action: NodeBuilder::new("remove").children([person]).build(),
            also: vec![me.to_owned()],
            what: "leave",
        });
    }
    (result_to(request).build(), notices)
}

fn requests_action(
    state: &mut State,
    me: &str,
    request: &Node,
    action: &Node,
    id: &str,
) -> (Node, Vec<Notice>) {
    let Some(inner) = action.children().and_then(|c| c.first()) else {
        return (error_to(request, 400, "bad-request"), Vec::new());
    };
    let approve = inner.tag == "approve";
    let tag = inner.tag.to_string();
    let mut answers = Vec::new();
    let mut added = Vec::new();
    for jid in children(inner, "participant").filter_map(|p| attr(p, "jid")) {
        let phone = phone_named(state, &jid);
        let Some(g) = state.groups.get_mut(id) else {
            break;
        };
        let mut node = NodeBuilder::new("participant").attr("jid", jid.clone());
        match phone.filter(|p| g.requests.remove(p).is_some()) {
            Some(p) => {
                if approve {
                    g.members.insert(p.clone(), Rank::Member);
                    added.push(p);
                }
            }
            None => node = node.attr("error", "404"),
        }
        answers.push(node.build());
    }
    let mut notices = Vec::new();
    if !added.is_empty() {
        let people: Vec<Node> = added.iter().map(|p| participant(state, p, None)).collect();
        notices.push(Notice {
            group: id.to_owned(),
            actor: me.to_owned(),
            action: NodeBuilder::new("add")
                .attr("reason", "approval")
                .children(people)
                .build(),
            also: Vec::new(),
            what: "add",
        });
    }
    let node = NodeBuilder::new("membership_requests_action")
        .children([NodeBuilder::new_dynamic(tag).children(answers).build()])
        .build();
    (result_to(request).children([node]).build(), notices)
}

/// Sends the `w:gp2` notification of `notice` to every online companion
/// of the group's members and of `also`.
fn send_notice(shared: &Shared, notice: Notice) {
    let world = &shared.world;
    let (conns, node, jid) = {
        let state = world.lock();
        let Some(g) = state.groups.get(&notice.group) else {
            return;
        };
        let mut people: Vec<&String> = g.members.keys().collect();
        people.extend(notice.also.iter());
        people.sort();
        people.dedup();
        let conns: Vec<u64> = people
            .iter()
            .filter_map(|p| state.accounts.get(*p))
            .flat_map(|a| a.devices.values().filter_map(|d| d.conn))
            .collect();
        let mut node = NodeBuilder::new("notification")
            .attr("type", "w:gp2")
            .attr("from", g.jid())
            .attr("id", format!("GP{}", world.next_id()))
            .attr("t", now_secs().to_string())
            .attr("notify", format!("Sim {}", notice.actor));
        // The actor by LID with its number beside it, as WhatsApp does.
        node = match lid_of(&state, &notice.actor) {
            Some(lid) => node
                .attr("participant", lid)
                .attr("participant_pn", pn_jid(&notice.actor)),
            None => node.attr("participant", pn_jid(&notice.actor)),
        };
        (conns, node.children([notice.action]).build(), g.jid())
    };
    for conn in conns {
        world.send(conn, node.clone());
    }
    world.emit(SimEvent::GroupChanged {
        group: jid,
        what: notice.what.to_owned(),
    });
}

/// What a test can ask about a group: its members and their ranks.
pub fn members(state: &State, group: &str) -> Option<Vec<(String, bool)>> {
    state.groups.get(user_of(group)).map(|g| {
        g.members
            .iter()
            .map(|(p, r)| (p.clone(), r.is_admin()))
            .collect()
    })
}

/// The phone of `phone` (a simulated contact) joins by invite `code` (or
/// link). Returns the group's JID.
pub fn phone_joins(shared: &Shared, phone: &str, code: &str) -> crate::error::Result<String> {
    let code = code.rsplit('/').next().unwrap_or(code);
    let request = NodeBuilder::new("iq")
        .attr("id", "sim-join")
        .attr("type", "set")
        .build();
    let action = NodeBuilder::new("invite").attr("code", code).build();
    let (answer, notices) = {
        let mut state = shared.world.lock();
        join(&mut state, phone, &request, &action)
    };
    let jid = answer
        .children()
        .and_then(|c| c.first())
        .and_then(|g| attr(g, "jid"))
        .ok_or_else(|| crate::error::SimError::NotFound(format!("no invite {code}")))?;
    for notice in notices {
        send_notice(shared, notice);
    }
    Ok(jid)
}
