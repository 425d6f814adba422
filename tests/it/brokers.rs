//! Real brokers for the sink tests: a private `nats-server` with JetStream
//! on a free port (stopped and started again on the same port and store),
//! and a TCP proxy in front of the machine's RabbitMQ that a test can cut
//! and restore, standing in for a broker outage.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::harness::eventually;

/// The machine's RabbitMQ (`.ci/run` starts it).
pub const RABBITMQ: &str = "127.0.0.1:5672";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn accepting(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_ok()
}

pub struct NatsServer {
    pub port: u16,
    store: tempfile::TempDir,
    login: Option<(String, String)>,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server that takes only this login.
    pub async fn start_with(login: Option<(&str, &str)>) -> Self {
        let mut server = Self {
            port: free_port(),
            store: tempfile::tempdir().expect("store dir"),
            login: login.map(|(u, p)| (u.to_owned(), p.to_owned())),
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts it again on the same port and store: JetStream's streams and
    /// messages survive.
    pub async fn resume(&mut self) {
        let mut cmd = Command::new("nats-server");
        cmd.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-sd",
        ])
        .arg(self.store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some((user, pass)) = &self.login {
            cmd.args(["--user", user, "--pass", pass]);
        }
        self.child = Some(cmd.spawn().expect("nats-server (apt package nats-server)"));
        let addr = self.addr();
        eventually("nats-server accepting", || async move {
            accepting(addr).await.then_some(())
        })
        .await;
    }

    /// Kills it (no goodbye to clients, as in a crash).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = self.addr();
        eventually("nats-server gone", || async move {
            (!accepting(addr).await).then_some(())
        })
        .await;
    }

    /// A client of the test's own.
    pub async fn client(&self) -> async_nats::Client {
        let mut opts = async_nats::ConnectOptions::new();
        if let Some((user, pass)) = &self.login {
            opts = opts.user_and_password(user.clone(), pass.clone());
        }
        opts.connect(self.url()).await.expect("connect to nats")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP proxy on a fixed local port: `cut` closes the port and every
/// connection through it; `restore` opens the port again.
pub struct Proxy {
    pub port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let proxy = Self {
            port: free_port(),
            upstream: upstream.to_owned(),
            tasks: Arc::default(),
        };
        proxy.restore().await;
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr()).await.expect("proxy port");
        let upstream = self.upstream.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("tasks").push(pipe);
            }
        });
        self.tasks.lock().expect("tasks").push(accept);
    }

    pub async fn cut(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
        let addr = self.addr();
        eventually("proxy port closed", || async move {
            (!accepting(addr).await).then_some(())
        })
        .await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// A queue of the test's own on the machine's RabbitMQ, bound to
/// `amq.topic` with `binding`; deleted with its connection.
pub struct AmqpQueue {
    _connection: lapin::Connection,
    consumer: lapin::Consumer,
}

impl AmqpQueue {
    pub async fn bind(binding: &str) -> Self {
        use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let connection = lapin::Connection::connect(
            &format!("amqp://guest:guest@{RABBITMQ}"),
            lapin::ConnectionProperties::default(),
        )
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (.ci/run starts it)");
        let channel = connection.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().clone(),
                "amq.topic".into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "sink-test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        Self {
            _connection: connection,
            consumer,
        }
    }

    /// The next message, failing the test if none comes within `within`.
    pub async fn next(&mut self, within: Duration) -> lapin::message::Delivery {
        use futures_util::StreamExt;
        tokio::time::timeout(within, self.consumer.next())
            .await
            .expect("a message in time")
            .expect("consumer open")
            .expect("delivery")
    }
}
