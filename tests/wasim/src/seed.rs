//! Realistic account state for a paired number: contacts whose phones have
//! each messaged it once (so Signal sessions exist on both sides), groups
//! of contacts whose sender keys it holds after one group message each, a
//! backlog of further 1:1 messages, and app-state mutations its phone
//! serves at the next sync. Benchmarks and tests apply one [`Seed`] per
//! number.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Result, SimError};
use crate::groups::{Group, Rank};
use crate::session::now_secs;
use crate::{Sim, appstate_seed};

/// How long a number may take to acknowledge its seeded 1:1 messages.
const ACKED_WITHIN: Duration = Duration::from_secs(300);

/// How much state to give a number. Contacts are numbered from
/// `contact_base`, so numbers seeded with the same base share one pool of
/// contacts (as neighbours' address books overlap), which keeps the
/// simulator's own memory flat while every number still holds a session
/// per contact.
#[derive(Debug, Clone)]
pub struct Seed {
    pub contacts: usize,
    pub contact_base: u64,
    pub groups: usize,
    /// Smallest and largest group, the number itself included; sizes are
    /// spread evenly between them.
    pub group_sizes: (usize, usize),
    /// Pins, mutes, archives and labels the phone has set over time.
    pub app_state_mutations: usize,
    /// Further 1:1 messages from the contacts, round-robin, after the
    /// first one each.
    pub backlog: usize,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            contacts: 300,
            contact_base: 628_500_000_000,
            groups: 20,
            group_sizes: (10, 200),
            app_state_mutations: 2_000,
            backlog: 0,
        }
    }
}

impl Seed {
    /// No state at all: what the bench measured before.
    pub fn empty() -> Self {
        Self {
            contacts: 0,
            groups: 0,
            app_state_mutations: 0,
            ..Self::default()
        }
    }

    /// The number of contact `i` of the pool.
    pub fn contact(&self, i: usize) -> String {
        (self.contact_base + i as u64).to_string()
    }

    /// Members of group `k` besides the seeded number: a window of the
    /// contact pool, so groups overlap as they do in life.
    fn group_members(&self, k: usize) -> Vec<String> {
        let (small, large) = self.group_sizes;
        let size = if self.groups <= 1 || large <= small {
            small
        } else {
            small + (large - small) * k / (self.groups - 1)
        };
        let others = size.saturating_sub(1).min(self.contacts);
        let start = if self.contacts == 0 {
            0
        } else {
            k * 37 % self.contacts
        };
        (0..others)
            .map(|j| self.contact((start + j) % self.contacts.max(1)))
            .collect()
    }
}

/// What [`Sim::seed`] did to a number.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub contacts: Vec<String>,
    /// Group JIDs (`…@g.us`) with their member counts, the number included.
    pub groups: Vec<(String, usize)>,
    /// Ids of every message sent to the number: the contacts' first
    /// messages, the backlog, then one message per group.
    pub messages: Vec<String>,
    /// App-state mutations waiting for the number's next sync.
    pub app_state_mutations: usize,
}

impl Sim {
    /// Gives the paired number `phone` the state `seed` describes. Its
    /// companion must be online with its prekeys up: the messages go to
    /// it now. Returns once every message is on its socket; the caller
    /// waits for [`Sim::unacked`] to reach zero to know the gateway took
    /// them all in.
    pub async fn seed(&self, phone: &str, seed: &Seed) -> Result<Seeded> {
        if seed.groups > 0 && seed.contacts == 0 {
            return Err(SimError::BadRequest("groups need contacts".into()));
        }
        let mut seeded = Seeded::default();
        {
            let world = &self.shared.world;
            let mut state = world.lock();
            for i in 0..seed.contacts {
                let contact = seed.contact(i);
                state.account(&contact, world.next_id())?;
                seeded.contacts.push(contact);
            }
        }
        for (i, contact) in seeded.contacts.iter().enumerate() {
            let text = format!("halo dari kontak {i}");
            seeded
                .messages
                .push(self.send_text(contact, phone, &text).await?);
        }
        for n in 0..seed.backlog {
            let contact = &seeded.contacts[n % seeded.contacts.len().max(1)];
            let text = format!("pesan lama {n}");
            seeded
                .messages
                .push(self.send_text(contact, phone, &text).await?);
        }
        // The group messages' sender keys come pairwise over the sessions
        // the 1:1 messages opened: the number must have taken those in
        // first, as a client may decrypt different chats side by side.
        if seed.groups > 0 {
            self.wait_acked(phone, ACKED_WITHIN).await?;
        }
        for k in 0..seed.groups {
            let members = seed.group_members(k);
            let jid = self.add_group(phone, k, &members);
            // The group's creator speaks first: its sender key goes to the
            // number pairwise, then the content as a `skmsg`.
            let text = format!("selamat datang di grup {k}");
            let id = self.send_group_text(&members[0], &jid, &text).await?;
            seeded.messages.push(id);
            seeded.groups.push((jid, members.len() + 1));
        }
        if seed.app_state_mutations > 0 {
            seeded.app_state_mutations = appstate_seed::stage(&self.shared, phone, seed, &seeded)?;
        }
        Ok(seeded)
    }

    /// Waits until every companion of `phone` acknowledged every message
    /// the simulator sent it.
    pub async fn wait_acked(&self, phone: &str, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left: usize = {
                let state = self.shared.world.lock();
                state
                    .unacked
                    .iter()
                    .filter(|((p, _), _)| p == phone)
                    .map(|(_, list)| list.len())
                    .sum()
            };
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::NotFound(format!(
                    "{phone} left {left} messages unacknowledged for {within:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A group the phone of `members[0]` made, with `phone` among its
    /// members; returns its JID.
    fn add_group(&self, phone: &str, k: usize, members: &[String]) -> String {
        let world = &self.shared.world;
        let next = world.next_id();
        let now = now_secs();
        let mut ranks = BTreeMap::new();
        for (j, m) in members.iter().enumerate() {
            ranks.insert(
                m.clone(),
                if j == 0 {
                    Rank::SuperAdmin
                } else {
                    Rank::Member
                },
            );
        }
        ranks.insert(phone.to_owned(), Rank::Member);
        // Another prefix than groups a device creates, so ids never meet.
        let id = format!("1203631{next:011}");
        let group = Group {
            id: id.clone(),
            subject: format!("Grup {k} {phone}"),
            subject_owner: members[0].clone(),
            subject_time: now,
            creator: members[0].clone(),
            created: now,
            description: None,
            announce: false,
            locked: false,
            ephemeral: 0,
            approval: false,
            members: ranks,
            invite: format!("SimSeed{next:08}"),
            requests: BTreeMap::new(),
        };
        let jid = group.jid();
        world.lock().groups.insert(id, group);
        jid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_sizes_spread_from_smallest_to_largest_within_the_pool() {
        let seed = Seed::default();
        let sizes: Vec<usize> = (0..seed.groups)
            .map(|k| seed.group_members(k).len() + 1)
            .collect();
        assert_eq!(sizes.first(), Some(&10));
        assert_eq!(sizes.last(), Some(&200));
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
        let small = Seed {
            contacts: 5,
            ..Seed::default()
        };
        assert!((0..small.groups).all(|k| small.group_members(k).len() <= 5));
    }
}
