//! Who may do what: the admin key, and API keys scoped to instances.

pub mod keys;

use std::collections::HashSet;
use std::fmt;

use uuid::Uuid;

/// What a scoped key may do with its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send messages and check numbers.
    Send,
    /// Read instances, messages and events.
    Read,
    /// Manage webhooks: registrations, secrets, deliveries, replays.
    Webhooks,
    /// Pair (QR and linking codes), log out, rename and delete instances.
    Manage,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Send, Scope::Read, Scope::Webhooks, Scope::Manage];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Webhooks => "webhooks",
            Scope::Manage => "manage",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one scoped key grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key_id: Uuid,
    pub scopes: HashSet<Scope>,
    pub instances: HashSet<Uuid>,
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator's key from the configuration: everything.
    Admin,
    /// A key made with `POST /v1/keys`.
    Scoped(Grant),
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The instance is not among the key's; said as "not found" so that ids
    /// of other instances do not leak.
    #[error("instance {0} not found")]
    Hidden(Uuid),
    #[error("this key lacks the `{0}` scope")]
    MissingScope(Scope),
    #[error("only the admin key may do this")]
    AdminOnly,
}

impl Principal {
    pub fn require_admin(&self) -> Result<(), Denied> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Scoped(_) => Err(Denied::AdminOnly),
        }
    }

    /// Whether `instance` is visible to this principal at all (whatever the
    /// scope).
    pub fn can_see(&self, instance: Uuid) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Scoped(grant) => grant.instances.contains(&instance),
        }
    }

    /// May this principal act on `instance` with `scope`? Visibility is
    /// checked before the scope, so a foreign instance is always hidden.
    pub fn require(&self, instance: Uuid, scope: Scope) -> Result<(), Denied> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Scoped(grant) if !grant.instances.contains(&instance) => {
                Err(Denied::Hidden(instance))
            }
            Principal::Scoped(grant) if !grant.scopes.contains(&scope) => {
                Err(Denied::MissingScope(scope))
            }
            Principal::Scoped(_) => Ok(()),
        }
    }

    /// The instances a list may show with `scope`; `None` means all.
    pub fn visible(&self, scope: Scope) -> Option<Vec<Uuid>> {
        match self {
            Principal::Admin => None,
            Principal::Scoped(grant) if grant.scopes.contains(&scope) => {
                Some(grant.instances.iter().copied().collect())
            }
            Principal::Scoped(_) => Some(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(instances: &[Uuid], scopes: &[Scope]) -> Principal {
        Principal::Scoped(Grant {
            key_id: Uuid::new_v4(),
            scopes: scopes.iter().copied().collect(),
            instances: instances.iter().copied().collect(),
        })
    }

    #[test]
    fn a_foreign_instance_is_hidden_whatever_the_scopes() {
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let key = scoped(&[mine], &Scope::ALL);
        assert_eq!(
            key.require(theirs, Scope::Read),
            Err(Denied::Hidden(theirs))
        );
        assert_eq!(key.require(mine, Scope::Read), Ok(()));
        let narrow = scoped(&[mine], &[Scope::Send]);
        assert_eq!(
            narrow.require(mine, Scope::Webhooks),
            Err(Denied::MissingScope(Scope::Webhooks))
        );
        assert_eq!(
            narrow.require(theirs, Scope::Webhooks),
            Err(Denied::Hidden(theirs))
        );
    }

    #[test]
    fn lists_show_only_what_the_scope_allows() {
        let mine = Uuid::new_v4();
        assert_eq!(Principal::Admin.visible(Scope::Read), None);
        assert_eq!(
            scoped(&[mine], &[Scope::Read]).visible(Scope::Read),
            Some(vec![mine])
        );
        assert_eq!(
            scoped(&[mine], &[Scope::Send]).visible(Scope::Read),
            Some(vec![])
        );
        assert!(scoped(&[mine], &Scope::ALL).require_admin().is_err());
        assert!(Principal::Admin.require_admin().is_ok());
    }

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("admin"), None);
    }
}
