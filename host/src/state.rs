//! What every registered Rhai function can reach: the run context and the `--set` overrides.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use yunmin_core::run::RunContext;

/// Shared host state, captured (as `Arc<Host>`) by registered closures.
#[derive(Debug)]
pub struct Host {
    /// The current run.
    pub ctx: Arc<RunContext>,
    /// `--set key=value` overrides, applied by `params(#{…})`.
    pub overrides: BTreeMap<String, String>,
    params_called: AtomicBool,
    code: RwLock<crate::stage_key::ScriptCode>,
    returns: RwLock<crate::stage_result::Returns>,
    revisions: RwLock<crate::stage_key::Revisions>,
    fail_at: RwLock<Option<String>>,
}

impl Host {
    /// State for a run with the given overrides.
    pub fn new(ctx: Arc<RunContext>, overrides: BTreeMap<String, String>) -> Arc<Self> {
        Arc::new(Self {
            ctx,
            overrides,
            params_called: AtomicBool::new(false),
            code: RwLock::new(Default::default()),
            returns: RwLock::new(Default::default()),
            revisions: RwLock::new(Default::default()),
            fail_at: RwLock::new(None),
        })
    }

    /// Names the `fail_point` that fails on purpose (`yunmin run --fail-at NAME`).
    pub fn set_fail_at(&self, name: Option<String>) {
        *self.fail_at.write().unwrap_or_else(|p| p.into_inner()) = name;
    }

    /// Whether `fail_point(name)` must fail.
    pub fn fails_at(&self, name: &str) -> bool {
        self.fail_at
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            == Some(name)
    }

    /// Records the compiled script, whose functions stage keys are computed from.
    pub fn set_script(&self, ast: &rhai::AST) {
        *self.code.write().unwrap_or_else(|p| p.into_inner()) =
            crate::stage_key::ScriptCode::new(ast);
    }

    /// The compiled script's functions.
    pub fn code(&self) -> crate::stage_key::ScriptCode {
        self.code.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records the return types of the engine's registered functions (for stage results).
    pub fn set_returns(&self, returns: crate::stage_result::Returns) {
        *self.returns.write().unwrap_or_else(|p| p.into_inner()) = returns;
    }

    /// The return types of the engine's registered functions.
    pub fn returns(&self) -> crate::stage_result::Returns {
        self.returns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the output revisions of the engine's registered functions (for stage keys).
    pub fn set_revisions(&self, revisions: crate::stage_key::Revisions) {
        *self.revisions.write().unwrap_or_else(|p| p.into_inner()) = revisions;
    }

    /// The output revisions of the engine's registered functions.
    pub fn revisions(&self) -> crate::stage_key::Revisions {
        self.revisions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks that the script called `params`; returns whether it had been called before.
    pub fn mark_params_called(&self) -> bool {
        self.params_called.swap(true, Ordering::SeqCst)
    }

    /// Whether the script called `params`.
    pub fn params_called(&self) -> bool {
        self.params_called.load(Ordering::SeqCst)
    }
}
