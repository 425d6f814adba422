//! Fault points for the simulator's crash tests: with the `sim` feature,
//! `SIM_FAULT=<point>` makes the process abort there, as a SIGKILL
//! would end it. Release builds have no such switch.

/// Aborts the process when `SIM_FAULT` names `name`.
#[cfg(feature = "sim")]
pub fn point(name: &str) {
    if std::env::var("SIM_FAULT").is_ok_and(|v| v == name) {
        tracing::warn!(point = name, "fault point: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "sim"))]
#[inline(always)]
pub fn point(_name: &str) {}
