use uuid::Uuid;

use super::*;
use crate::sealing::context::WebhookSecret;

const A: [u8; KEY_LEN] = [0xa1; KEY_LEN];
const B: [u8; KEY_LEN] = [0xb2; KEY_LEN];

fn ring(current: Option<&[u8; KEY_LEN]>, previous: &[[u8; KEY_LEN]]) -> Keyring {
    Keyring::new(current, previous).expect("keyring")
}

fn ctx() -> Context {
    Context::kv(Uuid::nil(), "session", "123@s.whatsapp.net")
}

#[test]
fn round_trip() {
    let k = ring(Some(&A), &[]);
    let plain = b"signal session record".to_vec();
    let sealed = k.seal(&plain, &ctx()).expect("seal");
    assert_ne!(sealed, plain);
    assert!(
        !sealed.windows(plain.len()).any(|w| w == plain.as_slice()),
        "the plain bytes do not show through"
    );
    assert_eq!(k.open(sealed, &ctx()).expect("open"), plain);
    // Empty values seal and open too.
    let sealed = k.seal(b"", &ctx()).expect("seal empty");
    assert_eq!(k.open(sealed, &ctx()).expect("open empty"), b"");
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let k = ring(Some(&A), &[]);
    let one = k.seal(b"same", &ctx()).expect("seal");
    let two = k.seal(b"same", &ctx()).expect("seal");
    assert_ne!(one, two);
}

#[test]
fn an_unknown_key_fails_clearly() {
    let sealed = ring(Some(&A), &[]).seal(b"x", &ctx()).expect("seal");
    let err = ring(Some(&B), &[])
        .open(sealed.clone(), &ctx())
        .expect_err("wrong key");
    assert!(matches!(err, SealError::UnknownKey(_)), "{err}");
    assert!(err.to_string().contains("encryption_key"), "{err}");
    // No key at all is the same answer, never the sealed bytes as plain.
    let err = Keyring::default().open(sealed, &ctx()).expect_err("no key");
    assert!(matches!(err, SealError::UnknownKey(_)), "{err}");
}

#[test]
fn a_tampered_byte_fails() {
    let k = ring(Some(&A), &[]);
    let sealed = k.seal(b"key material", &ctx()).expect("seal");
    // Every byte after the magic: version, key id, nonce, ciphertext, tag.
    for i in 7..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(k.open(bad, &ctx()).is_err(), "byte {i} flipped still opens");
    }
    let mut short = sealed.clone();
    short.pop();
    assert!(k.open(short, &ctx()).is_err());
}

#[test]
fn a_value_moved_to_another_row_fails() {
    let k = ring(Some(&A), &[]);
    let sealed = k.seal(b"x", &ctx()).expect("seal");
    for other in [
        Context::kv(Uuid::nil(), "session", "456@s.whatsapp.net"),
        Context::kv(Uuid::nil(), "identity", "123@s.whatsapp.net"),
        Context::kv(Uuid::max(), "session", "123@s.whatsapp.net"),
        Context::device(Uuid::nil()),
    ] {
        let err = k.open(sealed.clone(), &other).expect_err("other row");
        assert!(matches!(err, SealError::Forged), "{err}");
    }
    let id = Uuid::now_v7();
    let text = k
        .seal_text("whsec_abc", &Context::webhook(id, WebhookSecret::Current))
        .expect("seal");
    assert!(
        k.open_text(&text, &Context::webhook(id, WebhookSecret::Previous))
            .is_err()
    );
}

#[test]
fn plain_values_pass_through() {
    let k = ring(Some(&A), &[]);
    assert_eq!(
        k.open(b"{\"a\":1}".to_vec(), &ctx()).expect("plain"),
        b"{\"a\":1}"
    );
    assert_eq!(
        k.open_text("whsec_abc", &ctx()).expect("plain"),
        "whsec_abc"
    );
    assert_eq!(k.standing(b"{}").expect("standing"), Standing::Plain);
    // Without a key nothing is sealed.
    let none = Keyring::default();
    assert!(!none.seals());
    assert_eq!(none.seal(b"abc", &ctx()).expect("plain"), b"abc");
    assert_eq!(none.seal_text("whsec_x", &ctx()).expect("plain"), "whsec_x");
}

#[test]
fn a_previous_key_opens_but_does_not_seal() {
    let old = ring(Some(&A), &[]);
    let sealed = old.seal(b"x", &ctx()).expect("seal");
    let rotated = ring(Some(&B), &[A]);
    assert_eq!(rotated.open(sealed.clone(), &ctx()).expect("open"), b"x");
    assert!(matches!(
        rotated.standing(&sealed).expect("standing"),
        Standing::Other(_)
    ));
    let fresh = rotated.seal(b"x", &ctx()).expect("seal");
    assert_eq!(
        rotated.standing(&fresh).expect("standing"),
        Standing::Current
    );
    // The old keyring cannot open what the new key sealed.
    assert!(old.open(fresh, &ctx()).is_err());
}

#[test]
fn text_round_trip() {
    let k = ring(Some(&A), &[]);
    let id = Uuid::now_v7();
    let ctx = Context::webhook(id, WebhookSecret::Current);
    let text = k.seal_text("whsec_c2VjcmV0", &ctx).expect("seal");
    assert!(text.starts_with("enc:v1:"), "{text}");
    assert!(!text.contains("c2VjcmV0"));
    assert_eq!(k.open_text(&text, &ctx).expect("open"), "whsec_c2VjcmV0");
    assert_eq!(k.text_standing(&text).expect("standing"), Standing::Current);
}

#[test]
fn settings_are_validated_without_echoing_them() {
    let good = B64.encode(A);
    let k = Keyring::from_config(&good, &KeyList::default()).expect("valid");
    assert!(k.seals());
    assert_eq!(k.current_key_id().map(|s| s.len()), Some(16));

    let err = Keyring::from_config("c2hvcnQ=", &KeyList::default()).expect_err("short");
    let msg = err.to_string();
    assert!(
        msg.contains("`encryption_key`") && msg.contains("32 bytes"),
        "{msg}"
    );
    assert!(!msg.contains("c2hvcnQ="), "{msg}");

    let err = Keyring::from_config("not base64 at all!", &KeyList::default()).expect_err("bad");
    assert!(err.to_string().contains("`encryption_key`"), "{err}");

    let list = KeyList(vec![good.clone(), "nope".into()]);
    let err = Keyring::from_config("", &list).expect_err("bad previous");
    let msg = err.to_string();
    assert!(
        msg.contains("`previous_encryption_keys`") && msg.contains("key 2"),
        "{msg}"
    );

    assert!(
        !Keyring::from_config("  ", &KeyList::default())
            .expect("empty")
            .seals()
    );
}

#[test]
fn a_key_list_reads_from_a_list_or_one_string() {
    let a = B64.encode(A);
    let b = B64.encode(B);
    let from_env = figment::Figment::new().merge(("keys", format!("{a}, {b}")));
    let list: KeyList = from_env.extract_inner("keys").expect("string");
    assert_eq!(list.0, vec![a.clone(), b.clone()]);
    let from_toml = figment::Figment::new().merge(("keys", vec![a.clone(), b.clone()]));
    let list: KeyList = from_toml.extract_inner("keys").expect("list");
    assert_eq!(list.0, vec![a, b]);
}

#[test]
fn debug_output_shows_no_key_material() {
    let k = ring(Some(&A), &[B]);
    let shown = format!("{k:?} {:?}", KeyList(vec![B64.encode(A)]));
    assert!(!shown.contains(&B64.encode(A)), "{shown}");
    assert!(!shown.contains("a1a1"), "{shown}");
}
