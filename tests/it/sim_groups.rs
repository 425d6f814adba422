//! Groups end to end with the real client against the simulator: the
//! gateway creates a group with two simulated contacts, sends text and an
//! image to it (each member's phone opens the sender-key message), a member
//! replies, participants change, a third contact joins by the invite link,
//! and the instance leaves; the `group.*` events and what each phone really
//! received are asserted.

use reqwest::Method;
use serde_json::{Value, json};
use wasim::Sim;

use crate::harness::send;
use crate::sim_e2e::contact_has;
use crate::sim_outbound::{paired, received};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_simulated_contacts_talks_changes_and_is_left() {
    const ME: &str = "6281234569401";
    const ANA: &str = "6281234569402";
    const BUDI: &str = "6281234569403";
    const CITRA: &str = "6281234569404";
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(BUDI).expect("directory");
    sim.register_number(CITRA).expect("directory");
    let (gw, id, secret) = paired(&sim, ME, ANA).await;
    let groups = format!("/v1/instances/{id}/groups");

    let created = send(
        gw.req(Method::POST, &groups)
            .json(&json!({ "subject": "Warung Sim", "participants": [ANA, BUDI] })),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let group = created.body["group"]["jid"]
        .as_str()
        .expect("jid")
        .to_owned();
    assert!(group.ends_with("@g.us"), "{group}");
    assert_eq!(created.body["participants"][0]["ok"], true);
    assert_eq!(created.body["participants"][1]["ok"], true);
    let mut members = sim.group_members(&group).expect("the group exists");
    members.sort();
    assert_eq!(
        members,
        [
            (ME.to_owned(), true),
            (ANA.to_owned(), false),
            (BUDI.to_owned(), false)
        ]
    );
    let joined = gw
        .webhook_where(id, "group.joined", &secret, |b| {
            b["data"]["group"]["jid"] == group
        })
        .await;
    assert_eq!(joined["data"]["how"], "created", "{joined}");

    // Text: one skmsg, the sender key pairwise; both members open it.
    let text = send(
        gw.req(Method::POST, &format!("/send/by-number/{ME}"))
            .json(&json!({ "to": group, "text": "selamat pagi semua" })),
    )
    .await;
    assert_eq!(text.status, 200, "{:?}", text.body);
    let mid = text.body["message_id"].as_str().expect("id").to_owned();
    for member in [ANA, BUDI] {
        let got = received(&sim, member, &mid).await;
        assert_eq!(got.from, ME);
        assert_eq!(got.group.as_deref(), Some(group.as_str()));
        assert_eq!(
            got.message.conversation.as_deref(),
            Some("selamat pagi semua"),
            "{:?}",
            got.message
        );
    }

    // An image by URL rides the sender key the text distributed.
    let url = sim.serve_file("menu.png", PNG.to_vec());
    let image = send(
        gw.req(Method::POST, &format!("/send/by-number/{ME}/media-url"))
            .json(&json!({ "to": group, "url": url, "caption": "menu hari ini" })),
    )
    .await;
    assert_eq!(image.status, 200, "{:?}", image.body);
    let image_id = image.body["message_id"].as_str().expect("id").to_owned();
    contact_has(&sim, &image_id).await;
    for member in [ANA, BUDI] {
        let got = received(&sim, member, &image_id).await;
        let img = got.message.image_message.as_option().expect("an image");
        assert_eq!(img.caption.as_deref(), Some("menu hari ini"));
        assert_eq!(img.mimetype.as_deref(), Some("image/png"));
    }

    // Receipts per participant: the message is as far as its slowest one.
    contact_has(&sim, &mid).await;
    let receipt = |kind: &'static str, who: &'static str| {
        let mid = mid.clone();
        move |b: &Value| {
            b["type"] == kind
                && b["data"]["message_id"] == mid
                && b["data"]["participant"]["phone_number"] == who
        }
    };
    sim.deliver_in_group(&mid, ANA).expect("a receipt");
    let first = gw
        .webhook_where(
            id,
            "message.delivered",
            &secret,
            receipt("message.delivered", ANA),
        )
        .await;
    assert_ne!(first["data"]["status"], "delivered", "{first}");
    assert!(
        first["data"]["participant"]["lid"]
            .as_str()
            .is_some_and(|l| l.ends_with("@lid")),
        "{first}"
    );
    sim.read_in_group(&mid, ANA).expect("a receipt");
    let read = gw
        .webhook_where(id, "message.read", &secret, receipt("message.read", ANA))
        .await;
    assert_ne!(read["data"]["status"], "read", "{read}");
    sim.deliver_in_group(&mid, BUDI).expect("a receipt");
    let both = gw
        .webhook_where(
            id,
            "message.delivered",
            &secret,
            receipt("message.delivered", BUDI),
        )
        .await;
    assert_eq!(both["data"]["status"], "delivered", "{both}");
    let stored = send(gw.req(Method::GET, &format!("/v1/instances/{id}/messages/{mid}"))).await;
    assert_eq!(stored.status, 200, "{:?}", stored.body);
    assert_eq!(stored.body["status"], "delivered", "{:?}", stored.body);
    let mut states: Vec<(String, String)> = stored.body["receipts"]
        .as_array()
        .expect("receipts")
        .iter()
        .map(|r| {
            (
                r["participant"]["phone_number"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            (ANA.to_owned(), "read".to_owned()),
            (BUDI.to_owned(), "delivered".to_owned())
        ]
    );

    // A member replies: its sender key first, then the skmsg.
    let reply = sim
        .send_group_text(ANA, &group, "pagi juga!")
        .await
        .expect("a group message");
    let got = gw
        .message_webhook(id, "message.received", &secret, &reply)
        .await;
    let data = &got["data"];
    assert_eq!(data["text"], "pagi juga!", "{got}");
    assert_eq!(data["chat"], group, "{got}");
    assert_eq!(data["group"]["jid"], group, "{got}");
    assert_eq!(data["group"]["subject"], "Warung Sim", "{got}");
    assert_eq!(data["sender"]["phone_number"], ANA, "{got}");
    assert!(
        data["sender"]["lid"]
            .as_str()
            .is_some_and(|l| l.ends_with("@lid")),
        "{got}"
    );

    // Participants: add, promote, remove, each reported.
    let participants = format!("{groups}/{group}/participants");
    let added = send(
        gw.req(Method::POST, &participants)
            .json(&json!({ "action": "add", "participants": [CITRA] })),
    )
    .await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(added.body["results"][0]["ok"], true, "{:?}", added.body);
    let change = |action: &'static str, who: &'static str| {
        let group = group.clone();
        move |b: &Value| {
            b["data"]["group"]["jid"] == group
                && b["data"]["action"] == action
                && b["data"]["participants"][0]["phone_number"] == who
        }
    };
    let event = gw
        .webhook_where(id, "group.participants", &secret, change("added", CITRA))
        .await;
    assert_eq!(event["data"]["by"]["phone_number"], ME, "{event}");
    assert!(
        event["data"]["participants"][0]["lid"]
            .as_str()
            .is_some_and(|l| l.ends_with("@lid")),
        "{event}"
    );
    let promoted = send(
        gw.req(Method::POST, &participants)
            .json(&json!({ "action": "promote", "participants": [BUDI] })),
    )
    .await;
    assert_eq!(
        promoted.body["results"][0]["ok"], true,
        "{:?}",
        promoted.body
    );
    gw.webhook_where(id, "group.participants", &secret, change("promoted", BUDI))
        .await;
    let removed = send(
        gw.req(Method::POST, &participants)
            .json(&json!({ "action": "remove", "participants": [CITRA] })),
    )
    .await;
    assert_eq!(removed.body["results"][0]["ok"], true, "{:?}", removed.body);
    gw.webhook_where(id, "group.participants", &secret, change("removed", CITRA))
        .await;
    let info = send(gw.req(Method::GET, &format!("{groups}/{group}"))).await;
    assert_eq!(info.status, 200, "{:?}", info.body);
    let roles: Vec<(String, String)> = info.body["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            (
                p["phone_number"].as_str().unwrap_or_default().to_owned(),
                p["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        roles.contains(&(BUDI.to_owned(), "admin".to_owned())),
        "{roles:?}"
    );
    assert!(!roles.iter().any(|(p, _)| p == CITRA), "{roles:?}");

    // The invite link lets a third contact in again.
    let link = send(gw.req(Method::GET, &format!("{groups}/{group}/invite-link"))).await;
    assert_eq!(link.status, 200, "{:?}", link.body);
    let invite = link.body["invite_link"].as_str().expect("link").to_owned();
    assert_eq!(sim.join_group(CITRA, &invite).expect("joins"), group);
    gw.webhook_where(id, "group.participants", &secret, move |b| {
        b["data"]["action"] == "added"
            && b["data"]["by"]["phone_number"] == CITRA
            && b["data"]["participants"][0]["phone_number"] == CITRA
    })
    .await;

    // Leaving: the instance hears it left, and is no member any more.
    let left = send(gw.req(Method::POST, &format!("{groups}/{group}/leave"))).await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    let gone = gw
        .webhook_where(id, "group.left", &secret, |b| {
            b["data"]["group"]["jid"] == group
        })
        .await;
    assert_eq!(gone["data"]["how"], "left", "{gone}");
    let members = sim.group_members(&group).expect("the group");
    assert!(!members.iter().any(|(p, _)| p == ME), "{members:?}");
}
