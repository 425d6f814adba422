//! A real whatsapp-rust client (in-memory store) pointed at the simulator.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::client::Client;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// No internet here: every HTTP request of the client fails.
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        Err(whatsapp_rust::anyhow::anyhow!(
            "no HTTP in tests: {}",
            request.url
        ))
    }
}

pub struct TestClient {
    pub handle: BotHandle,
    pub client: Arc<Client>,
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
}

pub async fn client(ws_url: &str, backend: Arc<dyn Backend>) -> TestClient {
    let (tx, events) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend_arc(backend)
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(ws_url))
        .with_http_client(NoHttp)
        .with_runtime(TokioRuntime)
        .with_version((2, 3000, 1))
        .on_event(move |event: Arc<Event>, _client: Arc<Client>| {
            let _ = tx.send(event);
            async {}
        })
        .build()
        .await
        .unwrap();
    let handle = bot.spawn();
    let client = handle.client();
    TestClient {
        handle,
        client,
        events,
    }
}

impl TestClient {
    /// Waits for the first event `pick` accepts, failing after `within`.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for a client event")
                .expect("event channel closed");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }
}

/// A client paired with `sim` as `phone` and connected.
pub async fn paired(sim: &wasim::Sim, phone: &str) -> TestClient {
    let backend = Arc::new(whatsapp_rust::wacore::store::InMemoryBackend::new());
    let mut c = client(&sim.ws_url(), backend).await;
    let wait = Duration::from_secs(60);
    let qr = c
        .wait_for(wait, |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    sim.scan_qr(&qr, phone).unwrap();
    c.wait_for(wait, |e| matches!(e, Event::Connected(_)).then_some(()))
        .await;
    c
}
