//! The subjects of the groups each instance is in, kept in memory so an
//! inbound group message can name its group's subject without a WhatsApp
//! query per message: a group is looked up once, then kept current by the
//! `w:gp2` reports (a subject change, leaving).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use crate::engine::groups::{GroupEvent, GroupUpdate};
use crate::engine::{EngineEvent, Inbound, Session};

/// How long one metadata lookup may hold up the events behind it.
const LOOKUP: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct GroupSubjects {
    known: Mutex<HashMap<(Uuid, String), String>>,
}

fn is_group(chat: &str) -> bool {
    chat.ends_with("@g.us")
}

impl GroupSubjects {
    fn get(&self, id: Uuid, group: &str) -> Option<String> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(&(id, group.to_owned())).cloned()
    }

    fn put(&self, id: Uuid, group: &str, subject: String) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert((id, group.to_owned()), subject);
    }

    fn forget(&self, id: Uuid, group: &str) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.remove(&(id, group.to_owned()));
    }

    /// Forgets every group of an instance (it logged out or was deleted).
    pub fn forget_instance(&self, id: Uuid) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.retain(|(i, _), _| *i != id);
    }

    /// Names the subject of each group message's chat in `event`, from
    /// the cache or, for a group not seen yet, one lookup on `session`;
    /// and follows what a group report changes. A failed lookup leaves the
    /// subject out rather than hold the message.
    pub async fn apply(&self, id: Uuid, session: Option<&dyn Session>, event: &mut EngineEvent) {
        match event {
            EngineEvent::Message(m) => self.fill(id, session, std::slice::from_mut(m)).await,
            EngineEvent::Messages { messages, .. } => {
                for m in messages.iter_mut() {
                    self.fill(id, session, std::slice::from_mut(m)).await;
                }
            }
            EngineEvent::Group(report) => self.follow(id, report),
            _ => {}
        }
    }

    async fn fill(&self, id: Uuid, session: Option<&dyn Session>, messages: &mut [Inbound]) {
        for m in messages.iter_mut().filter(|m| is_group(&m.chat)) {
            if let Some(subject) = self.get(id, &m.chat) {
                m.chat_subject = Some(subject);
                continue;
            }
            let Some(groups) = session.and_then(|s| s.groups()) else {
                continue;
            };
            match tokio::time::timeout(LOOKUP, groups.group(&m.chat)).await {
                Ok(Ok(info)) => {
                    self.put(id, &m.chat, info.subject.clone());
                    m.chat_subject = Some(info.subject);
                }
                Ok(Err(e)) => {
                    tracing::debug!(group = %m.chat, error = %e, "no subject for a group message")
                }
                Err(_) => tracing::debug!(group = %m.chat, "the group lookup took too long"),
            }
        }
    }

    /// Keeps the cache current with a report, and names a subject the
    /// report leaves out when it is known.
    fn follow(&self, id: Uuid, report: &mut GroupEvent) {
        match report {
            GroupEvent::Updated { group, changes, .. } => {
                for change in changes.iter() {
                    if let GroupUpdate::Subject(s) = change {
                        self.put(id, &group.jid, s.clone());
                    }
                }
                if group.subject.is_none() {
                    group.subject = self.get(id, &group.jid);
                }
            }
            GroupEvent::Left { group, .. } => {
                if group.subject.is_none() {
                    group.subject = self.get(id, &group.jid);
                }
                self.forget(id, &group.jid);
            }
            GroupEvent::Joined { group, .. }
            | GroupEvent::Participants { group, .. }
            | GroupEvent::MembershipRequest { group, .. } => match &group.subject {
                Some(s) => self.put(id, &group.jid, s.clone()),
                None => group.subject = self.get(id, &group.jid),
            },
        }
    }
}
