//! Every branch of the w:gp2 notification translation.

use whatsapp_rust::wacore::stanza::groups::MembershipRequestMethod;

use super::*;

const GROUP: &str = "120363000000000001@g.us";
const ME: &str = "6281200000001@s.whatsapp.net";
const ADMIN: &str = "6281200000002@s.whatsapp.net";
const OTHER: &str = "6281200000003@s.whatsapp.net";

fn jid(s: &str) -> Jid {
    s.parse().expect("jid")
}

fn update(by: Option<&str>, action: Action) -> WaGroupUpdate {
    WaGroupUpdate::builder()
        .group_jid(jid(GROUP))
        .timestamp(Utc::now())
        .is_lid_addressing_mode(false)
        .maybe_participant(by.map(jid))
        .action(action)
        .build()
}

fn info(j: &str) -> GroupParticipantInfo {
    GroupParticipantInfo {
        jid: jid(j),
        phone_number: None,
        display_name: None,
        r#type: None,
        lid: Some(jid("99887766@lid")),
        username: None,
        join_time: None,
        group_history_sent_state: None,
    }
}

fn events(by: Option<&str>, action: Action) -> Vec<GroupEvent> {
    notification(&update(by, action), &[jid(ME)])
        .into_iter()
        .map(|e| match e {
            EngineEvent::Group(g) => g,
            other => panic!("not a group event: {other:?}"),
        })
        .collect()
}

fn group() -> GroupRef {
    GroupRef {
        jid: GROUP.into(),
        subject: None,
    }
}

fn admin() -> Option<Party> {
    Some(party(&jid(ADMIN), None))
}

#[test]
fn participant_changes_name_everyone_with_their_lid() {
    let added = events(
        Some(ADMIN),
        Action::Add {
            participants: vec![info(OTHER)],
            reason: None,
        },
    );
    assert_eq!(
        added,
        [GroupEvent::Participants {
            group: group(),
            by: admin(),
            action: ParticipantAction::Add,
            people: vec![Party {
                jid: OTHER.into(),
                phone_number: Some("6281200000003".into()),
                lid: Some("99887766@lid".into()),
            }],
        }]
    );
    for (action, expected) in [
        (
            Action::Promote {
                participants: vec![info(OTHER)],
            },
            ParticipantAction::Promote,
        ),
        (
            Action::Demote {
                participants: vec![info(OTHER)],
            },
            ParticipantAction::Demote,
        ),
        (
            Action::Remove {
                participants: vec![info(OTHER)],
                reason: None,
            },
            ParticipantAction::Remove,
        ),
    ] {
        let got = events(Some(ADMIN), action);
        assert!(
            matches!(&got[..], [GroupEvent::Participants { action, .. }] if *action == expected),
            "{got:?}"
        );
    }
}

#[test]
fn the_instance_added_removed_or_leaving_is_also_told_so() {
    let added = events(
        Some(ADMIN),
        Action::Add {
            participants: vec![info(ME)],
            reason: None,
        },
    );
    assert!(
        matches!(&added[0], GroupEvent::Joined { how: "added", .. }),
        "{added:?}"
    );
    let joined = events(
        Some(ME),
        Action::Add {
            participants: vec![info(ME)],
            reason: None,
        },
    );
    assert!(matches!(
        &joined[0],
        GroupEvent::Joined { how: "invite", .. }
    ));
    let removed = events(
        Some(ADMIN),
        Action::Remove {
            participants: vec![info(ME)],
            reason: None,
        },
    );
    assert!(matches!(
        &removed[0],
        GroupEvent::Left { how: "removed", .. }
    ));
    let left = events(
        Some(ME),
        Action::Remove {
            participants: vec![info(ME)],
            reason: None,
        },
    );
    assert!(matches!(&left[0], GroupEvent::Left { how: "left", .. }));
    assert_eq!(left.len(), 2, "the participants change too");
}

#[test]
fn setting_changes_are_updates() {
    let cases = [
        (
            Action::Subject {
                subject: "Baru".into(),
                subject_owner: None,
                subject_time: None,
            },
            GroupUpdate::Subject("Baru".into()),
        ),
        (
            Action::Description {
                id: "d1".into(),
                description: Some("Isi".into()),
            },
            GroupUpdate::Description(Some("Isi".into())),
        ),
        (
            Action::Description {
                id: "d2".into(),
                description: None,
            },
            GroupUpdate::Description(None),
        ),
        (
            Action::Locked { threshold: None },
            GroupUpdate::Locked(true),
        ),
        (Action::Unlocked, GroupUpdate::Locked(false)),
        (Action::Announce, GroupUpdate::Announce(true)),
        (Action::NotAnnounce, GroupUpdate::Announce(false)),
        (
            Action::Ephemeral {
                expiration: 86400,
                trigger: None,
            },
            GroupUpdate::EphemeralSeconds(86400),
        ),
        (
            Action::MembershipApprovalMode { enabled: true },
            GroupUpdate::ApprovalRequired(true),
        ),
        (Action::RevokeInvite, GroupUpdate::InviteRevoked),
    ];
    for (action, change) in cases {
        assert_eq!(
            events(Some(ADMIN), action),
            [GroupEvent::Updated {
                group: group(),
                by: admin(),
                changes: vec![change],
            }]
        );
    }
}

#[test]
fn membership_requests_and_lifecycle() {
    let asked = events(
        Some(OTHER),
        Action::MembershipApprovalRequest {
            request_method: MembershipRequestMethod::InviteLink,
            parent_group_jid: None,
        },
    );
    assert!(
        matches!(&asked[..], [GroupEvent::MembershipRequest { state: "created", people, .. }] if people[0].jid == OTHER)
    );
    let created = events(
        None,
        Action::CreatedMembershipRequests {
            request_method: MembershipRequestMethod::InviteLink,
            parent_group_jid: None,
            requests: vec![info(OTHER)],
        },
    );
    assert!(matches!(
        &created[..],
        [GroupEvent::MembershipRequest {
            state: "created",
            ..
        }]
    ));
    let revoked = events(
        Some(ADMIN),
        Action::RevokedMembershipRequests {
            participants: vec![jid(OTHER)],
        },
    );
    assert!(matches!(
        &revoked[..],
        [GroupEvent::MembershipRequest {
            state: "revoked",
            ..
        }]
    ));
    let deleted = events(Some(ADMIN), Action::Delete { reason: None });
    assert!(matches!(
        &deleted[..],
        [GroupEvent::Left { how: "deleted", .. }]
    ));
    assert!(events(Some(ADMIN), Action::Suspended).is_empty());
}

#[test]
fn a_created_group_names_its_subject_when_the_notification_carries_it() {
    use whatsapp_rust::NodeBuilder;
    let raw = NodeBuilder::new("create")
        .children([NodeBuilder::new("group")
            .attr("id", "120363000000000001")
            .attr("subject", "Toko Makmur")
            .build()])
        .build();
    let mine = events(Some(ME), Action::Create { raw });
    match &mine[..] {
        [GroupEvent::Joined { group, how, .. }] => {
            assert_eq!(*how, "created");
            assert_eq!(group.subject.as_deref(), Some("Toko Makmur"));
        }
        other => panic!("{other:?}"),
    }
    let bare = NodeBuilder::new("create").build();
    let added = events(Some(ADMIN), Action::Create { raw: bare });
    assert!(matches!(
        &added[..],
        [GroupEvent::Joined { how: "added", group, .. }] if group.subject.is_none()
    ));
}
