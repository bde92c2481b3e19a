//! Running scripts off the async executor.
//!
//! A script blocks its thread while it runs, and host functions block too (the runtime waits
//! for the database from them), so a run never happens on an async worker. The runner hands
//! each run to tokio's blocking pool, at most `workers` at a time: a script stuck for its whole
//! wall-time budget costs one of those slots, never an executor thread, and a burst of slow
//! scripts queues instead of starving the server.
//!
//! A run started while another run waits for it (a script's `create` whose before-save
//! script runs first) goes through [`ScriptRunner::run_nested`], which takes no slot: waiting
//! for a free slot while holding one could deadlock once every slot waits. Nesting is bounded
//! by the runtime's chain depth.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::RunError;
use crate::host::ScriptHost;
use crate::run::{RunInput, RunOutput};
use crate::sandbox::{CompiledScript, Sandbox};

/// Runs scripts on a bounded number of blocking threads.
#[derive(Debug, Clone)]
pub struct ScriptRunner {
    sandbox: Arc<Sandbox>,
    slots: Arc<Semaphore>,
}

impl ScriptRunner {
    /// A runner allowing `workers` scripts to run at once (at least one).
    pub fn new(sandbox: Arc<Sandbox>, workers: usize) -> ScriptRunner {
        ScriptRunner {
            sandbox,
            slots: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Runs `script` on a blocking thread once a slot is free. The wall-time limit counts from
    /// the start of the run, not from the wait for a slot.
    pub async fn run(
        &self,
        script: CompiledScript,
        input: RunInput,
        host: Arc<dyn ScriptHost>,
    ) -> Result<RunOutput, RunError> {
        let internal = |script: &CompiledScript, message: String| RunError::Internal {
            script: script.name().to_owned(),
            message,
        };
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| internal(&script, "the script runner is shut down".to_owned()))?;
        self.spawn(script, input, host, Some(slot)).await
    }

    /// Runs `script` on a blocking thread at once, without taking a slot: for a run that
    /// another run (holding a slot) waits for.
    pub async fn run_nested(
        &self,
        script: CompiledScript,
        input: RunInput,
        host: Arc<dyn ScriptHost>,
    ) -> Result<RunOutput, RunError> {
        self.spawn(script, input, host, None).await
    }

    async fn spawn(
        &self,
        script: CompiledScript,
        input: RunInput,
        host: Arc<dyn ScriptHost>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<RunOutput, RunError> {
        let sandbox = Arc::clone(&self.sandbox);
        let name = script.name().to_owned();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            sandbox.run(&script, &input, host)
        })
        .await
        .map_err(|error| RunError::Internal {
            script: name,
            message: format!("the worker running it failed: {error}"),
        })?
    }
}
