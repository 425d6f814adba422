//! A webhook receiver on 127.0.0.1 for tests: records every request and
//! answers as it is told (a script of answers, then a default).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::{HeaderMap, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use tokio::sync::watch;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with a `Retry-After` of so many seconds.
    RetryAfter(u16, u64),
    /// A 302 to this location.
    Redirect(String),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers this status after so many milliseconds.
    Slow(u16, u64),
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    #[allow(dead_code)]
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

struct State {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    count: watch::Sender<usize>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let (count, _) = watch::channel(0usize);
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Answer::Status(200)),
            count,
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind receiver");
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("socket address");
        let ep_state = state.clone();
        let endpoint = poem::endpoint::make(move |req: Request| {
            let state = ep_state.clone();
            async move { answer(state, req).await }
        });
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers these, in order, before falling back to the default.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().expect("lock").extend(answers);
    }

    pub fn set_default(&self, answer: Answer) {
        *self.state.default.lock().expect("lock") = answer;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived, or panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let mut rx = self.state.count.subscribe();
        let reached = tokio::time::timeout(within, rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "expected {n} requests within {within:?}, got {}",
            self.requests().len()
        );
        self.requests()
    }
}

async fn answer(state: Arc<State>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = req.into_body().into_vec().await.unwrap_or_default();
    let next = state.script.lock().expect("lock").pop_front();
    let answer = next.unwrap_or_else(|| state.default.lock().expect("lock").clone());
    {
        let mut requests = state.requests.lock().expect("lock");
        requests.push(Recorded {
            path,
            headers,
            body,
            at: Instant::now(),
        });
        state.count.send_replace(requests.len());
    }
    match answer {
        Answer::Status(code) => Response::builder()
            .status(StatusCode::from_u16(code).expect("status"))
            .body(format!("answered {code}")),
        Answer::RetryAfter(code, secs) => Response::builder()
            .status(StatusCode::from_u16(code).expect("status"))
            .header("retry-after", secs.to_string())
            .body(""),
        Answer::Redirect(location) => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", location)
            .body(""),
        Answer::Slow(code, ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::builder()
                .status(StatusCode::from_u16(code).expect("status"))
                .body("")
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::builder().status(StatusCode::OK).body("")
        }
    }
}
