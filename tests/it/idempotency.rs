//! Idempotency-Key claims whose claimer is gone: taken over by the next
//! request with the key, which sends under the same WhatsApp message id
//! or answers from the message the first claimer recorded.

use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use uuid::Uuid;
use wagate::engine::scripted::{Call, ScriptedEngine};
use wagate::messaging::idempotency::message_id;

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::{new_instance, pair_and_connect, wait_status};

const SENDER: &str = "6281234567801";
const FRIEND: &str = "6281299990000";

async fn online(db: TestDb) -> (TestApp, Uuid) {
    let settings = settings_with(&db, |f| f.merge(("messaging.default_region", "ID")));
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, SENDER).await;
    (app, id)
}

fn request(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.req(Method::POST, &format!("/v1/send/by-number/{SENDER}"))
        .header("Idempotency-Key", key)
        .json(&json!({ "to": FRIEND, "text": "sekali saja" }))
}

/// The ids the engine was asked to send texts under.
fn sent_ids(engine: &ScriptedEngine) -> Vec<Option<String>> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::SendText { context, .. } => Some(context.message_id),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_key_left_in_flight_by_a_crashed_run_is_taken_over_after_a_restart() {
    let (first, id) = online(TestDb::new().await).await;
    first.engine.send_delay(std::time::Duration::from_secs(30));
    let hanging = tokio::spawn(request(&first, "order-7").send());
    eventually("the first send in flight", || async {
        (!sent_ids(&first.engine).is_empty()).then_some(())
    })
    .await;
    // The same run still works on it.
    send(request(&first, "order-7"))
        .await
        .assert_problem(409, "idempotency_key_in_flight");
    // The process dies mid-send: the claim stays open.
    hanging.abort();
    let db = first.into_db();

    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    engine.store_session(id);
    let settings = settings_with(&db, |f| f.merge(("messaging.default_region", "ID")));
    let second = TestApp::spawn_scripted(db, settings, engine).await;
    wait_status(&second, id, "online").await;
    let taken = send(request(&second, "order-7")).await;
    assert_eq!(taken.status, 200, "{:?}", taken.body);
    let expected = message_id(id, "order-7");
    assert_eq!(taken.body["message_id"], expected.as_str());
    assert_eq!(
        sent_ids(&second.engine),
        vec![Some(expected)],
        "sent again under the first claimer's id"
    );
    let again = send(request(&second, "order-7")).await;
    assert_eq!(again.body, taken.body, "the answer is kept now");
    assert_eq!(sent_ids(&second.engine).len(), 1);
}

#[tokio::test]
async fn a_taken_over_key_whose_message_was_recorded_answers_from_it() {
    let (app, id) = online(TestDb::new().await).await;
    let first = send(request(&app, "order-8")).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["message_id"], message_id(id, "order-8").as_str());
    // As a claimer leaves it that sent and recorded the message, then died
    // before keeping the answer.
    let conn = app.db.connect().await;
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE idempotency_keys SET response = NULL, claimed_by = 'run:gone' \
             WHERE instance_id = $1"
        }
        _ => {
            "UPDATE idempotency_keys SET response = NULL, claimed_by = 'run:gone' \
             WHERE instance_id = ?"
        }
    };
    let updated = conn
        .execute_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await
        .expect("update");
    assert_eq!(updated.rows_affected(), 1);
    conn.close().await.ok();

    let repeat = send(request(&app, "order-8")).await;
    assert_eq!(repeat.status, 200, "{:?}", repeat.body);
    assert_eq!(repeat.body["message_id"], first.body["message_id"]);
    assert_eq!(repeat.body["to_jid"], first.body["to_jid"]);
    assert_eq!(sent_ids(&app.engine).len(), 1, "not sent twice");
}
