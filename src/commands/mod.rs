//! The subcommands, each a [`CommandResult`]: an `Err` ends the command with the error's
//! [`CommandError::exit_code`]; an `Ok` code is a command that ran to its end (1 when some input
//! failed, each already reported). `main` only parses, sets up logging, calls [`dispatch`] and
//! reports the error.
mod caption;
mod dedup;
pub mod error;
mod export;
mod inspect;
mod models;
mod pipeline;
mod query;
mod report;

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
pub use error::{CommandError, CommandResult};

use crate::error::Error;

/// The flags every subcommand sees.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub quiet: bool,
    /// `--precision` (it wins over a pipeline's `runtime.precision`).
    pub precision: Option<crate::config::Precision>,
}

/// The end of a summary line over output folders: how many were skipped (each was named in a
/// warning already), or nothing.
fn skipped_note(skipped: usize) -> String {
    match skipped {
        0 => String::new(),
        n => format!("; {n} folders skipped"),
    }
}

/// Runs the parsed command line's subcommand.
pub fn dispatch(cli: Cli) -> CommandResult {
    let global = Global {
        quiet: cli.quiet,
        precision: cli.precision,
    };
    match cli.command {
        Command::Probe { input } => inspect::probe(&input),
        Command::Devices => models::devices(),
        Command::Vae {
            model,
            device,
            action,
        } => models::vae(&model, &device, action, global),
        Command::Clip {
            model,
            images,
            texts,
            device,
        } => models::clip(&model, &images, &texts, &device, global),
        Command::MakeRandomModel { folder, seed } => {
            models::call_and_print(&framepipe_proto::ops::InitRandom { folder, seed })
        }
        command @ Command::Batch { .. } => batch(command, global),
        Command::BatchSummary { output } => batch_summary(&output),
        Command::Check {
            rules,
            junit,
            format,
            jobs,
            inputs,
        } => inspect::check(&rules, junit.as_deref(), format, jobs, &inputs),
        Command::Search(args) => query::search(args, global),
        Command::Export(args) => export::export(&args, global),
        Command::Dedup(args) => dedup::dedup(&args, global),
        Command::Caption {
            dirs,
            pipeline,
            refresh,
        } => caption::caption(&dirs, &pipeline, refresh, global),
        command @ Command::Bench { .. } => bench(command, global),
        Command::Describe {
            output,
            model,
            labels,
            templates,
            top,
            format,
            device,
        } => query::describe(
            &output, &model, &labels, &templates, top, format, &device, global,
        ),
        Command::Run {
            pipeline,
            output,
            device,
            report,
            inputs,
        } => pipeline::run(
            pipeline.as_deref(),
            &output,
            device.as_deref(),
            &inputs,
            report,
            global,
        ),
        Command::Report { dirs, output } => report::report(&dirs, &output, global),
    }
}

/// `batch`: its flags as [`pipeline::BatchArgs`], `--devices` split into the first device
/// (which takes `--device`'s place) and the replicas.
fn batch(command: Command, global: Global) -> CommandResult {
    let Command::Batch {
        pipeline,
        output,
        manifest,
        jobs,
        shard,
        claim_lease,
        retries,
        redo_stale,
        force,
        device,
        devices,
        report,
        inputs,
    } = command
    else {
        unreachable!("dispatch passes only `batch` here")
    };
    let devices = device_names(&devices);
    let first = devices.first().cloned().or(device);
    let args = pipeline::BatchArgs {
        manifest,
        jobs,
        shard,
        retries,
        redo_stale,
        force,
        more_devices: devices.into_iter().skip(1).collect(),
        report,
        claim_lease: crate::batch::claims::lease_from(claim_lease).map_err(Error::Usage)?,
    };
    pipeline::batch(
        pipeline.as_deref(),
        &output,
        first.as_deref(),
        &inputs,
        &args,
        global,
    )
}

/// `--devices`' entries as device names: `0,1` means cuda:0, cuda:1; names pass through.
fn device_names(devices: &[String]) -> Vec<String> {
    devices
        .iter()
        .map(|d| match d.trim().parse::<u32>() {
            Ok(n) => format!("cuda:{n}"),
            Err(_) => d.trim().to_string(),
        })
        .collect()
}

/// `batch-summary`: the merged summary as pretty JSON.
fn batch_summary(output: &Path) -> CommandResult {
    let summary = crate::batch::merge_summaries(output).map_err(Error::setup)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).expect("summary serializes")
    );
    Ok(ExitCode::SUCCESS)
}

/// `bench`: `--models` measures the model stages alone (INPUT optional), otherwise the whole
/// pipeline on INPUT.
fn bench(command: Command, global: Global) -> CommandResult {
    let Command::Bench {
        pipeline,
        device,
        encode_baseline,
        models,
        seconds,
        format,
        input,
    } = command
    else {
        unreachable!("dispatch passes only `bench` here")
    };
    if models {
        return pipeline::bench_models(
            pipeline.as_deref(),
            device.as_deref(),
            seconds,
            format,
            input.as_deref(),
            global,
        );
    }
    let input = input.ok_or_else(|| Error::Usage("bench: give an INPUT".into()))?;
    pipeline::bench(
        pipeline.as_deref(),
        device.as_deref(),
        encode_baseline,
        format,
        &input,
        global,
    )
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("outputs serialize")
    );
}
