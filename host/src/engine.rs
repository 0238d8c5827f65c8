//! The Rhai engine as `yunmin` sets it up: every module registered, prints routed to tracing,
//! Ctrl-C stopping the script between operations.

use crate::api::ApiEntry;
use crate::modules;
use crate::state::Host;
use rhai::{Dynamic, Engine};
use std::sync::Arc;

/// A configured engine and the documentation of what it registers.
pub fn build(host: &Arc<Host>) -> (Engine, Vec<ApiEntry>) {
    let mut engine = Engine::new();
    engine.set_max_expr_depths(256, 256);
    engine.on_print(|s| {
        println!("{s}");
        tracing::debug!(target: "script", "{s}");
    });
    engine.on_debug(
        |s, src, pos| tracing::info!(target: "script", "{} {pos}: {s}", src.unwrap_or("")),
    );
    engine.on_progress(|_| {
        yunmin_core::run::is_cancelled().then(|| Dynamic::from("cancelled by user (Ctrl-C)"))
    });
    let entries = modules::register_all(&mut engine, host);
    host.set_returns(crate::stage_result::Returns::from_engine(&engine));
    host.set_revisions(crate::stage_key::Revisions::of(&entries));
    (engine, entries)
}
