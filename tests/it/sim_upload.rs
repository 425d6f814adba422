//! A large upload end to end through the real client: `media-file` spools
//! it, the engine encrypts it to a file and streams that to the simulated
//! media host with a known length, and the contact's phone decrypts exactly
//! the bytes that were uploaded.

use reqwest::Method;
use sha2::{Digest, Sha256};
use wasim::Sim;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::wacore::download::DownloadUtils;
use whatsapp_rust::wacore::upload::encrypted_len;

use crate::harness::{TestDb, send};
use crate::sim_e2e::{contact_has, eventually_value, gateway};

/// Over whatsapp-rust's 5 MiB threshold, where it asks the host whether an
/// earlier attempt can be resumed before it streams the body.
const SIZE: usize = 6 * 1024 * 1024 + 123;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_is_streamed_to_the_media_host_and_decrypts_to_the_file() {
    const SENDER: &str = "6281234569701";
    const FRIEND: &str = "6281234569702";
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(FRIEND).expect("directory");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(&sim, id, &secret, SENDER).await;

    let mut file = b"%PDF-1.7\n".to_vec();
    file.extend((0..SIZE - file.len()).map(|i| (i % 251) as u8));
    let form = reqwest::multipart::Form::new().text("to", FRIEND).part(
        "file",
        reqwest::multipart::Part::bytes(file.clone()).file_name("report.pdf"),
    );
    let r = send(
        gw.req(
            Method::POST,
            &format!("/send/by-number/{SENDER}/media-file"),
        )
        .multipart(form),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    contact_has(&sim, &mid).await;

    let got = eventually_value("the contact to decrypt the document", || async {
        sim.received(FRIEND).into_iter().find(|m| m.id == mid)
    })
    .await;
    let document = got
        .message
        .document_message
        .as_option()
        .cloned()
        .unwrap_or_else(|| panic!("a document message: {:?}", got.message));
    assert_eq!(document.file_length, Some(SIZE as u64));
    assert_eq!(document.file_name.as_deref(), Some("report.pdf"));
    let direct_path = document.direct_path.clone().expect("direct path");

    // One upload, with its length stated up front and all of it received.
    let uploads = sim.upload_log();
    let upload = uploads
        .iter()
        .find(|u| u.direct_path == direct_path)
        .unwrap_or_else(|| panic!("{direct_path} among {uploads:?}"));
    let expected = encrypted_len(SIZE) as u64;
    assert_eq!(upload.content_length, Some(expected), "{upload:?}");
    assert_eq!(upload.received, expected, "{upload:?}");

    let ciphertext = sim.media(&direct_path).expect("stored");
    let media_key = document.media_key.clone().expect("media key");
    let plaintext = DownloadUtils::verify_and_decrypt(&ciphertext, &media_key, MediaType::Document)
        .expect("the contact decrypts it");
    assert!(plaintext == file, "the decrypted file differs");
    assert_eq!(
        document.file_sha256.as_deref(),
        Some(&Sha256::digest(&file)[..])
    );
}
