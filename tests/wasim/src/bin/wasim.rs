//! Runs the simulator on its own for scripts and local development: prints
//! the WebSocket URL for `WAGATE_WHATSAPP__WS_URL` and serves `/control/*`
//! on the same port until interrupted.

#[tokio::main]
async fn main() -> Result<(), wasim::SimError> {
    let sim = wasim::Sim::start_on(
        std::env::var("WASIM_LISTEN")
            .ok()
            .as_deref()
            .unwrap_or("127.0.0.1:0"),
    )
    .await?;
    println!("ws_url={}", sim.ws_url());
    println!("control={}/control", sim.http_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
