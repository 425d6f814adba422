//! Signal keys of the simulated phones (device 0 of every account): an
//! identity, a registration id and a signed prekey, enough for a client to
//! build a real X3DH session and encrypt to them.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::KeyPair;

use crate::error::{Result, SimError};

/// The signed prekey id every simulated phone publishes.
pub const SIGNED_PREKEY_ID: u32 = 1;

pub struct PhoneKeys {
    pub identity: KeyPair,
    pub registration_id: u32,
    pub signed_prekey: KeyPair,
    pub signed_prekey_signature: Vec<u8>,
}

impl PhoneKeys {
    pub fn generate() -> Result<Self> {
        let identity = KeyPair::generate(&mut rand::rng());
        let signed_prekey = KeyPair::generate(&mut rand::rng());
        // Signed over the serialized key (type byte + 32), as X3DH checks it.
        let signature = identity
            .private_key
            .calculate_signature(&signed_prekey.public_key.serialize(), &mut rand::rng())
            .map_err(|e| SimError::Signal(e.to_string()))?;
        Ok(Self {
            identity,
            registration_id: rand::random::<u32>() & 0x3fff,
            signed_prekey,
            signed_prekey_signature: signature.to_vec(),
        })
    }
}

/// A 3-byte big-endian key id, as the prekey IQs carry them.
pub fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// One `<user>` of a prekey-fetch answer.
pub struct Bundle<'a> {
    pub jid: String,
    pub registration_id: u32,
    pub identity: &'a [u8],
    pub prekey: Option<(u32, &'a [u8])>,
    pub signed_prekey_id: u32,
    pub signed_prekey: &'a [u8],
    pub signature: &'a [u8],
    /// The companion's account-signed identity (companions only).
    pub device_identity: Option<&'a [u8]>,
}

impl Bundle<'_> {
    pub fn node(&self) -> Node {
        let mut children = vec![
            NodeBuilder::new("registration")
                .bytes(self.registration_id.to_be_bytes().to_vec())
                .build(),
            NodeBuilder::new("type").bytes(vec![5u8]).build(),
            NodeBuilder::new("identity")
                .bytes(self.identity.to_vec())
                .build(),
        ];
        if let Some((id, public)) = self.prekey {
            children.push(
                NodeBuilder::new("key")
                    .children([
                        NodeBuilder::new("id").bytes(id3(id)).build(),
                        NodeBuilder::new("value").bytes(public.to_vec()).build(),
                    ])
                    .build(),
            );
        }
        children.push(
            NodeBuilder::new("skey")
                .children([
                    NodeBuilder::new("id")
                        .bytes(id3(self.signed_prekey_id))
                        .build(),
                    NodeBuilder::new("value")
                        .bytes(self.signed_prekey.to_vec())
                        .build(),
                    NodeBuilder::new("signature")
                        .bytes(self.signature.to_vec())
                        .build(),
                ])
                .build(),
        );
        if let Some(identity) = self.device_identity {
            children.push(
                NodeBuilder::new("device-identity")
                    .bytes(identity.to_vec())
                    .build(),
            );
        }
        NodeBuilder::new("user")
            .attr("jid", self.jid.clone())
            .children(children)
            .build()
    }
}

impl PhoneKeys {
    pub fn bundle(&self, jid: String) -> Bundle<'_> {
        Bundle {
            jid,
            registration_id: self.registration_id,
            identity: self.identity.public_key.public_key_bytes(),
            prekey: None,
            signed_prekey_id: SIGNED_PREKEY_ID,
            signed_prekey: self.signed_prekey.public_key.public_key_bytes(),
            signature: &self.signed_prekey_signature,
            device_identity: None,
        }
    }
}
