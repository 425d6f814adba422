//! The simulator's errors: what can go wrong on one connection or in one
//! control call. A connection error ends that connection only.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SimError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_websockets::Error),
    #[error("noise: {0}")]
    Noise(String),
    #[error("protobuf: {0}")]
    Proto(#[from] buffa::DecodeError),
    #[error("binary node: {0}")]
    Binary(#[from] wacore_binary::BinaryError),
    #[error("signal: {0}")]
    Signal(String),
    #[error("the client broke the protocol: {0}")]
    Protocol(String),
    #[error("the connection closed")]
    Closed,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl From<wacore_noise::HandshakeError> for SimError {
    fn from(e: wacore_noise::HandshakeError) -> Self {
        SimError::Noise(e.to_string())
    }
}

impl From<wacore_noise::NoiseError> for SimError {
    fn from(e: wacore_noise::NoiseError) -> Self {
        SimError::Noise(e.to_string())
    }
}

impl From<wacore_libsignal::protocol::SignalProtocolError> for SimError {
    fn from(e: wacore_libsignal::protocol::SignalProtocolError) -> Self {
        SimError::Signal(e.to_string())
    }
}

impl From<wacore_libsignal::protocol::CurveError> for SimError {
    fn from(e: wacore_libsignal::protocol::CurveError) -> Self {
        SimError::Signal(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, SimError>;
