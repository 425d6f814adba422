//! A release build must verify WhatsApp's Noise certificate chain: the
//! default feature set of wagate must not reach whatsapp-rust's
//! `danger-skip-cert-chain-verify` (only the test feature `sim` does).

use std::process::Command;

fn features_tree(extra: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-p", "wagate", "-e", "features,normal"])
        .args(["--prefix", "none", "--format", "{p} {f}"])
        .args(extra)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn default_features_keep_the_certificate_check() {
    let tree = features_tree(&[]);
    assert!(tree.contains("whatsapp-rust"), "unexpected tree:\n{tree}");
    assert!(
        !tree.contains("danger-skip-cert-chain-verify"),
        "the default build skips the certificate check:\n{tree}"
    );
}

#[test]
fn the_sim_feature_is_what_skips_it() {
    // The check above would pass vacuously if the name were wrong.
    let tree = features_tree(&["--features", "sim"]);
    assert!(tree.contains("danger-skip-cert-chain-verify"));
}
