//! One client connection: WebSocket upgrade, Noise handshake, then a reader
//! loop that hands nodes to the session and a writer task that owns the
//! write cipher (frames must leave in counter order).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_websockets::ServerBuilder;

use crate::error::{Result, SimError};
use crate::handshake;
use crate::server::Shared;
use crate::session::Session;
use crate::wire::{Decryptor, Encryptor, FrameReader, send_frame};
use crate::world::{Outbound, SimEvent};

pub async fn serve(shared: Arc<Shared>, tcp: TcpStream) -> Result<()> {
    let handshake = shared.handshakes.begin();
    let (_request, ws) = ServerBuilder::new().accept(tcp).await?;
    let (mut sink, stream) = ws.split();
    let mut reader = FrameReader::new(stream);
    let established = handshake::respond(
        &mut reader,
        &mut sink,
        &shared.noise_key,
        &shared.cert_chain,
    )
    .await?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let mut encryptor = Encryptor::new(established.write);
    let mut writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Node(node) => {
                    let sealed = encryptor.seal(&node)?;
                    send_frame(&mut sink, &sealed).await?;
                }
                Outbound::Close => break,
            }
        }
        // Best effort: the peer may already be gone.
        let _ = sink.close().await;
        Ok::<(), SimError>(())
    });

    let world = shared.world.clone();
    let conn = world.next_id();
    let mut session = Session::open(
        shared.clone(),
        conn,
        tx,
        established.client_static,
        established.payload,
    );
    // Login answered (or registration begun): the handshake is over.
    drop(handshake);
    let mut decryptor = Decryptor::new(established.read);
    let outcome = loop {
        tokio::select! {
            frame = reader.next_frame() => {
                let node = match frame.and_then(|f| decryptor.open(f)) {
                    Ok(node) => node,
                    Err(SimError::Closed) => break Ok(()),
                    Err(e) => break Err(e),
                };
                session.handle(node).await;
            }
            done = &mut writer => {
                break match done {
                    Ok(result) => result,
                    Err(join) => Err(SimError::Protocol(format!("writer task: {join}"))),
                };
            }
        }
    };
    session.close();
    writer.abort();
    world.emit(SimEvent::Disconnected { conn });
    outcome
}
