//! The sending half of Signal for a simulated phone: sessions it opened to
//! companions from their uploaded bundles, so an inbound message is a real
//! `pkmsg`/`msg` the client decrypts with its own keys.

use std::collections::HashMap;

use wacore_libsignal::protocol::{
    CiphertextMessage, Direction, GenericSignedPreKey, IdentityChange, IdentityKey,
    IdentityKeyPair, IdentityKeyStore, KeyPair, PreKeyBundle, PreKeyId, PreKeyRecord,
    PreKeySignalMessage, PreKeyStore, ProtocolAddress, PublicKey, SenderKeyDistributionMessage,
    SenderKeyName, SenderKeyRecord, SenderKeyStore, SessionRecord, SessionStore, SignalMessage,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore, Timestamp,
    UsePQRatchet, create_sender_key_distribution_message, group_decrypt, group_encrypt,
    message_decrypt, message_encrypt, process_prekey_bundle,
    process_sender_key_distribution_message,
};

use crate::error::{Result, SimError};
use crate::world::Device;

type SignalResult<T> = std::result::Result<T, wacore_libsignal::protocol::SignalProtocolError>;

/// One phone's Signal state: its identity and the sessions it holds.
pub struct PhoneSignal {
    identity: IdentityKeyPair,
    registration_id: u32,
    sessions: HashMap<String, SessionRecord>,
    identities: HashMap<String, IdentityKey>,
    /// Group sender keys: its own chains and those members distributed.
    sender_keys: SenderKeys,
}

impl PhoneSignal {
    pub fn new(identity: &KeyPair, registration_id: u32) -> Self {
        Self {
            identity: IdentityKeyPair::from(identity.clone()),
            registration_id,
            sessions: HashMap::new(),
            identities: HashMap::new(),
            sender_keys: SenderKeys(HashMap::new()),
        }
    }

    /// Encrypts `plaintext` for companion `device` of `user`, opening a
    /// session from its bundle first if needed. Returns (`enc` type, bytes).
    pub async fn encrypt(
        &mut self,
        user: &str,
        device_id: u16,
        device: &Device,
        prekey: Option<(u32, Vec<u8>)>,
        plaintext: &[u8],
    ) -> Result<(&'static str, Vec<u8>)> {
        let address = ProtocolAddress::new(user, u32::from(device_id).into());
        if !self.sessions.contains_key(&address.to_string()) {
            let signed = device.signed_prekey.as_ref().ok_or_else(|| {
                SimError::NotFound(format!("{user}:{device_id} has no signed prekey"))
            })?;
            let prekey = match prekey {
                Some((id, key)) => Some((id.into(), PublicKey::from_djb_public_key_bytes(&key)?)),
                None => None,
            };
            let bundle = PreKeyBundle::new(
                device.registration_id,
                u32::from(device_id).into(),
                prekey,
                signed.id.into(),
                PublicKey::from_djb_public_key_bytes(&signed.public)?,
                signed.signature.clone(),
                IdentityKey::new(PublicKey::from_djb_public_key_bytes(&device.identity_pub)?),
            )?;
            let mut identities = Identities {
                identity: self.identity.clone(),
                registration_id: self.registration_id,
                known: std::mem::take(&mut self.identities),
            };
            let mut sessions = Sessions(std::mem::take(&mut self.sessions));
            // A Send generator: this future runs inside spawned tasks.
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
            let outcome = process_prekey_bundle(
                &address,
                &mut sessions,
                &mut identities,
                &bundle,
                &mut rng,
                UsePQRatchet::No,
            )
            .await;
            self.sessions = sessions.0;
            self.identities = identities.known;
            outcome?;
        }
        let mut identities = Identities {
            identity: self.identity.clone(),
            registration_id: self.registration_id,
            known: std::mem::take(&mut self.identities),
        };
        let mut sessions = Sessions(std::mem::take(&mut self.sessions));
        let sealed = message_encrypt(plaintext, &address, &mut sessions, &mut identities).await;
        self.sessions = sessions.0;
        self.identities = identities.known;
        let sealed = sealed?;
        let kind = match &sealed {
            CiphertextMessage::PreKeySignalMessage(_) => "pkmsg",
            _ => "msg",
        };
        Ok((kind, sealed.serialize().to_vec()))
    }
}

impl PhoneSignal {
    /// Opens a `pkmsg`/`msg` (`kind`) that companion `device_id` of `user`
    /// sent to this phone. The phone publishes no one-time prekeys, so a
    /// `pkmsg` can only name its signed prekey (`signed`). Returns the
    /// padded plaintext.
    pub async fn decrypt(
        &mut self,
        user: &str,
        device_id: u16,
        kind: &str,
        sealed: &[u8],
        signed: SignedPreKeyRecord,
    ) -> Result<Vec<u8>> {
        let address = ProtocolAddress::new(user, u32::from(device_id).into());
        let message = match kind {
            "pkmsg" => {
                CiphertextMessage::PreKeySignalMessage(PreKeySignalMessage::try_from(sealed)?)
            }
            "msg" => CiphertextMessage::SignalMessage(SignalMessage::try_from(sealed)?),
            other => return Err(SimError::Protocol(format!("cannot open `{other}`"))),
        };
        let mut identities = Identities {
            identity: self.identity.clone(),
            registration_id: self.registration_id,
            known: std::mem::take(&mut self.identities),
        };
        let mut sessions = Sessions(std::mem::take(&mut self.sessions));
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
        let opened = message_decrypt(
            &message,
            &address,
            &mut sessions,
            &mut identities,
            &mut NoPreKeys,
            &OneSignedPreKey(signed),
            &mut rng,
            UsePQRatchet::No,
        )
        .await;
        self.sessions = sessions.0;
        self.identities = identities.known;
        Ok(opened?.plaintext)
    }
}

impl PhoneSignal {
    /// Takes in the sender key `sender` distributed for `group` (the
    /// serialized `SenderKeyDistributionMessage`).
    pub async fn accept_sender_key(
        &mut self,
        group: &str,
        sender: &str,
        skdm: &[u8],
    ) -> Result<()> {
        let name = SenderKeyName::from_parts(group, sender);
        let skdm = SenderKeyDistributionMessage::try_from(skdm)?;
        process_sender_key_distribution_message(&name, &skdm, &mut self.sender_keys).await?;
        Ok(())
    }

    /// Opens a `skmsg` that `sender` sent to `group`. Returns the padded
    /// plaintext.
    pub async fn open_group(
        &mut self,
        group: &str,
        sender: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let name = SenderKeyName::from_parts(group, sender);
        Ok(group_decrypt(sealed, &mut self.sender_keys, &name).await?)
    }

    /// This phone's own sender key for `group` as a distribution message
    /// (`me` names the phone), created on first use.
    pub async fn own_sender_key(&mut self, group: &str, me: &str) -> Result<Vec<u8>> {
        let name = SenderKeyName::from_parts(group, me);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
        let skdm =
            create_sender_key_distribution_message(&name, &mut self.sender_keys, &mut rng).await?;
        Ok(skdm.serialized().to_vec())
    }

    /// Seals `plaintext` for `group` with this phone's sender key (see
    /// [`Self::own_sender_key`], which must have run first).
    pub async fn seal_group(&mut self, group: &str, me: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let name = SenderKeyName::from_parts(group, me);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
        let sealed = group_encrypt(&mut self.sender_keys, &name, plaintext, &mut rng).await?;
        Ok(sealed.serialized().to_vec())
    }
}

struct SenderKeys(HashMap<String, SenderKeyRecord>);

fn sender_key_of(name: &SenderKeyName) -> String {
    format!("{}\n{}", name.group_id(), name.sender_id())
}

#[async_trait::async_trait]
impl SenderKeyStore for SenderKeys {
    async fn store_sender_key(
        &mut self,
        name: &SenderKeyName,
        record: SenderKeyRecord,
    ) -> SignalResult<()> {
        self.0.insert(sender_key_of(name), record);
        Ok(())
    }

    async fn load_sender_key(&self, name: &SenderKeyName) -> SignalResult<Option<SenderKeyRecord>> {
        Ok(self.0.get(&sender_key_of(name)).cloned())
    }
}

/// The phone's signed prekey as a record the decryption can look up.
pub fn signed_prekey_record(id: u32, key: &KeyPair, signature: &[u8]) -> SignedPreKeyRecord {
    SignedPreKeyRecord::new(id.into(), Timestamp::from_epoch_millis(0), key, signature)
}

struct NoPreKeys;

#[async_trait::async_trait]
impl PreKeyStore for NoPreKeys {
    async fn get_pre_key(&self, _id: PreKeyId) -> SignalResult<PreKeyRecord> {
        Err(SignalProtocolError::InvalidPreKeyId)
    }

    async fn save_pre_key(&mut self, _id: PreKeyId, _record: &PreKeyRecord) -> SignalResult<()> {
        Ok(())
    }

    async fn remove_pre_key(&mut self, _id: PreKeyId) -> SignalResult<()> {
        Ok(())
    }
}

struct OneSignedPreKey(SignedPreKeyRecord);

#[async_trait::async_trait]
impl SignedPreKeyStore for OneSignedPreKey {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        if u32::from(id) == u32::from(self.0.id()?) {
            Ok(self.0.clone())
        } else {
            Err(SignalProtocolError::InvalidSignedPreKeyId)
        }
    }

    async fn save_signed_pre_key(
        &mut self,
        _id: SignedPreKeyId,
        _record: &SignedPreKeyRecord,
    ) -> SignalResult<()> {
        Ok(())
    }
}

struct Sessions(HashMap<String, SessionRecord>);

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self.0.get(&address.to_string()).cloned())
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.0.contains_key(&address.to_string()))
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.0.insert(address.to_string(), record);
        Ok(())
    }
}

struct Identities {
    identity: IdentityKeyPair,
    registration_id: u32,
    known: HashMap<String, IdentityKey>,
}

#[async_trait::async_trait]
impl IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.identity.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        let previous = self.known.insert(address.to_string(), *identity);
        Ok(match previous {
            Some(p) if p != *identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        })
    }

    /// Trust on first use, like a phone that has not verified safety numbers.
    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.known.get(&address.to_string()).cloned())
    }
}
