//! `yunmin`: the command-line host. Parses arguments, sets up logging and Ctrl-C, and hands
//! work to scripts or to the core primitives. No algorithm lives here.

mod api;
mod check;
mod cli;
mod engine;
mod errors;
mod logging;
mod modules;
mod options;
mod primitive;
mod ray;
mod script;
mod stage_key;
mod stage_result;
mod state;

use anyhow::{Result, anyhow};
use clap::Parser;
use cli::{Cli, Command};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

fn api_command(write: Option<std::path::PathBuf>, check: Option<std::path::PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctx = Arc::new(yunmin_core::run::RunContext::new(tmp.path(), 42, false)?);
    let host = state::Host::new(ctx, BTreeMap::new());
    let (engine, entries) = engine::build(&host);
    let md = api::render_markdown(&entries, modules::MODULE_DOCS)
        + api::render_properties(&api::properties(&engine)).as_str();
    if let Some(path) = write {
        std::fs::write(&path, &md)?;
        println!("wrote {} ({} functions)", path.display(), entries.len());
    } else if let Some(path) = check {
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != md {
            return Err(anyhow!(
                "{} is out of date: run `yunmin api --write {}`",
                path.display(),
                path.display()
            ));
        }
        println!(
            "{} is up to date ({} functions)",
            path.display(),
            entries.len()
        );
    } else {
        print!("{}", api::render_text(&entries));
    }
    Ok(())
}

fn main() -> ExitCode {
    // Fixed hashing seed: anonymous closures get the same name (a hash of their body) in every
    // process, which the stage cache uses as the closure's code identity.
    let _ = rhai::config::hashing::set_hashing_seed(Some([0x7975_6e6d, 0x696e, 0x6566, 0x6669]));
    let cli = Cli::parse();
    let log_file = logging::init(cli.verbose, cli.quiet);
    if cli.quiet {
        yunmin_core::run::set_progress_enabled(false);
    }
    let _ = ctrlc::set_handler(|| {
        if yunmin_core::run::is_cancelled() {
            eprintln!("second Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("Ctrl-C: stopping at the next safe point (press again to exit now)");
        yunmin_core::run::request_cancel();
    });
    let res = match cli.command {
        Command::Run {
            script,
            set,
            run,
            guard,
        } => script::run(&script, set, &run, &guard, &log_file),
        Command::Check { script, set } => script::check(&script, &set),
        Command::Verify { run } => script::verify(&run),
        Command::Rerun {
            run,
            out,
            verify,
            guard,
        } => script::rerun(&run, &out, verify, &guard, &log_file),
        Command::Api { write, check } => api_command(write, check),
        Command::Dedup(a) => modules::dedup::run_cli(*a),
        Command::Bench(b) => yunmin_bench::run(b),
        Command::Metrics(args) => modules::eval::run_cli(*args),
        Command::Ingest(args) => modules::ingest::run_cli(args),
        Command::Diff(a) => modules::merge::run_diff(a),
        Command::Merge(a) => modules::merge::run_merge(a),
        Command::Parquet(a) => modules::columnar::run_cli(a),
        Command::Tokenizer(a) => modules::text::run_cli(a),
        Command::Train(a) => modules::train::run_cli(a),
        Command::Generate(a) => modules::model::run_cli(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", errors::chain(e.as_ref()));
            if yunmin_core::run::is_cancelled() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
