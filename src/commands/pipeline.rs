//! The commands that run the pipeline: `run` (inputs one after another), `batch` (many inputs,
//! resumable, sharded, several devices), `bench` (one input, per-stage rates) and
//! `bench --models` (the model stages on synthetic frames).
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::{CommandResult, EXIT_INPUT_FAILED, EXIT_INTERRUPTED};
use super::Global;
use crate::cli::ListFormat;
use crate::device::{self, DeviceInfo, DeviceRequest};
use crate::error::{Error, Result};
use crate::job::output_stem;
use crate::logging::Severity;
use crate::session::{prepare_output_dir, Session, SessionFlags};

pub struct BatchArgs {
    pub manifest: Option<PathBuf>,
    pub jobs: usize,
    pub shard: Option<String>,
    pub retries: u32,
    pub redo_stale: bool,
    pub force: bool,
    /// Devices beyond the first of `--devices` (the first goes through the usual `--device`).
    pub more_devices: Vec<String>,
    /// `--report`: the HTML page of OUTDIR's finished outputs into OUTDIR/report/.
    pub report: bool,
    /// How long an input's claim holds without renewal.
    pub claim_lease: std::time::Duration,
}

/// The session of a pipeline command, whose errors are all met before any input (exit 2).
fn open_session(pipeline: Option<&Path>, device: Option<&str>, global: Global) -> Result<Session> {
    Session::open(SessionFlags {
        pipeline,
        device,
        precision: global.precision,
    })
    .map_err(Error::setup)
}

pub fn run(
    pipeline: Option<&Path>,
    out_dir: &Path,
    device_flag: Option<&str>,
    inputs: &[PathBuf],
    report: bool,
    global: Global,
) -> CommandResult {
    let session = open_session(pipeline, device_flag, global)?;
    prepare_output_dir(out_dir)?;
    let job = session.job(out_dir, &session.device, !global.quiet, 0);
    let mut made = Vec::new();
    let mut failed = 0usize;
    let mut stems = HashSet::new();
    for input in inputs {
        let stem = output_stem(input);
        if !stems.insert(stem.clone()) {
            crate::logging::error(
                None,
                &Error::input(
                    input,
                    format!(
                        "another input of this run also writes {}/{stem}/; rename one of them",
                        out_dir.display()
                    ),
                ),
            );
            failed += 1;
            continue;
        }
        match job.process(input) {
            Ok(done) => {
                let line = serde_json::json!({
                    "input": done.input,
                    "output": done.output_dir,
                    "frames": done.report.output.frames,
                    "scenes": done.report.scenes.len(),
                    "warnings": done.report.warnings.len(),
                    "wall_seconds": done.report.stats.wall_seconds,
                });
                println!("{line}");
                made.push(done.output_dir);
            }
            Err(e) => {
                crate::logging::error(Some(&input.display().to_string()), &e);
                failed += 1;
            }
        }
    }
    if report && !made.is_empty() {
        let page = crate::report_page::write_for(&made, &out_dir.join(super::report::FOLDER))?;
        super::report::announce(&page, global);
    }
    if failed == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if inputs.len() > 1 {
        crate::logging::say(
            Severity::Error,
            None,
            &format!("{failed} of {} inputs failed", inputs.len()),
            &[],
        );
    }
    Ok(ExitCode::from(EXIT_INPUT_FAILED))
}

pub fn batch(
    pipeline: Option<&Path>,
    out_dir: &Path,
    device_flag: Option<&str>,
    inputs: &[PathBuf],
    args: &BatchArgs,
    global: Global,
) -> CommandResult {
    use crate::batch::{self, Options};
    let session = open_session(pipeline, device_flag, global)?;
    prepare_output_dir(out_dir)?;
    let shard = shard(args)?;
    let items = batch::collect_items(inputs, args.manifest.as_deref()).map_err(Error::setup)?;
    if items.is_empty() {
        return Err(Error::Usage("no inputs (give files, folders or --manifest)".into()).into());
    }
    let stop = stop_on_signal();
    let all_devices = all_devices(&session, &args.more_devices)?;
    let jobs = args.jobs.max(all_devices.len());
    let threads_per_input = threads_per_input(jobs);
    let job_list: Vec<_> = all_devices
        .iter()
        .map(|d| session.job(out_dir, d, false, threads_per_input))
        .collect();
    let options = Options {
        jobs,
        shard,
        retries: args.retries,
        force: args.force,
        redo_stale: args.redo_stale,
        show_progress: !global.quiet,
        claim_lease: args.claim_lease,
    };
    let summary = batch::run(&job_list, &items, &options, stop.clone()).map_err(Error::setup)?;
    println!(
        "{}",
        serde_json::to_string(&summary).expect("summary serializes")
    );
    if args.report && summary.done + summary.skipped_done > 0 {
        let dirs = [out_dir.to_path_buf()];
        let page = crate::report_page::write(&dirs, &out_dir.join(super::report::FOLDER))?;
        super::report::announce(&page, global);
    }
    Ok(batch_exit_code(stop.load(Ordering::Relaxed), &summary))
}

/// An interrupted batch says so before any failed input does.
fn batch_exit_code(interrupted: bool, summary: &crate::batch::Summary) -> ExitCode {
    if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.failed > 0 {
        ExitCode::from(EXIT_INPUT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Codec threads per input: the cores shared among `jobs` inputs at once; a single job leaves
/// them to FFmpeg (0).
fn threads_per_input(jobs: usize) -> u32 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if jobs > 1 {
        (cores / jobs).max(1) as u32
    } else {
        0
    }
}

/// `--shard`, or else the slice the environment names (none for `--shard none`).
fn shard(args: &BatchArgs) -> Result<Option<crate::batch::Shard>> {
    use crate::batch::Shard;
    match args.shard.as_deref() {
        Some(text) => Shard::parse_flag(text),
        None => Shard::from_env(),
    }
    .map_err(|message| Error::Usage(format!("shard: {message}")))
}

/// The flag a batch's first Ctrl-C sets; the handler is installed on the way.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First signal: start nothing new, let running inputs finish. Second: leave now (outputs
    // stay consistent: unfinished inputs are only .partial folders, cleaned on the rerun).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        crate::logging::say(
            Severity::Warning,
            None,
            "stopping: no new inputs; waiting for the running ones (signal again to quit now)",
            &[],
        );
    });
    stop
}

/// The session's device, then one replica per extra device: each is checked (a missing GPU is
/// an error, not a silent CPU run) and gets the same precision as the first.
fn all_devices(session: &Session, more_devices: &[String]) -> Result<Vec<DeviceInfo>> {
    let mut all_devices = vec![session.device.clone()];
    for name in more_devices {
        let mut replica = DeviceRequest::parse(name)
            .and_then(|r| device::select(r, true))
            .map_err(|message| Error::Device {
                requested: name.clone(),
                message,
            })?;
        replica.precision = session.device.precision;
        all_devices.push(replica);
    }
    Ok(all_devices)
}

/// A scratch folder for a bench's outputs, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        Scratch(std::env::temp_dir().join(format!("framepipe-bench-{}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bench(
    pipeline: Option<&Path>,
    device_flag: Option<&str>,
    encode_baseline: bool,
    format: ListFormat,
    input: &Path,
    global: Global,
) -> CommandResult {
    let session = open_session(pipeline, device_flag, global)?;
    let scratch = Scratch::new();
    prepare_output_dir(&scratch.0)?;
    let job = session.job(&scratch.0, &session.device, false, 0);
    let sampler = session
        .device
        .name
        .cuda_index()
        .and_then(crate::bench::GpuSampler::start);
    let result = job.process_into(input, Path::new("bench"));
    let gpu = sampler.and_then(|s| s.finish());
    let done = result?;
    let baseline = if encode_baseline {
        let mut plain = session.config.clone();
        plain.clip = None;
        plain.vae = None;
        plain.scenes = None;
        plain.caption = None;
        if plain.encode.is_none() {
            plain.encode = Some(Default::default());
        }
        let job = crate::job::Job {
            config: &plain,
            labels: None,
            vae: None,
            captioner: None,
            ..job
        };
        Some(job.process_into(input, Path::new("baseline"))?)
    } else {
        None
    };
    let summary = crate::bench::summarize(&done.report, gpu, baseline.as_ref().map(|b| &b.report));
    match format {
        ListFormat::Text => print!("{}", crate::bench::text(&summary)),
        ListFormat::Json => super::print_json(&summary),
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench --models`: the pipeline's model stages on synthetic frames (see bench::models).
pub fn bench_models(
    pipeline: Option<&Path>,
    device_flag: Option<&str>,
    seconds: f64,
    format: ListFormat,
    input: Option<&Path>,
    global: Global,
) -> CommandResult {
    use crate::bench::models::{ModelsBench, SourceShape};
    if !(0.0..=600.0).contains(&seconds) {
        return Err(Error::Usage(format!("--seconds {seconds}: give 0 to 600")).into());
    }
    let session = open_session(pipeline, device_flag, global)?;
    let scratch = Scratch::new();
    prepare_output_dir(&scratch.0)?;
    let source = match input.map(crate::media::probe::probe).transpose()? {
        Some(info) => SourceShape {
            width: info.width,
            height: info.height,
            sar: (info.sample_aspect_ratio[0], info.sample_aspect_ratio[1]),
            rotation: info.rotation,
        },
        None => SourceShape::default(),
    };
    let report = ModelsBench {
        config: &session.config,
        device: session.device.name,
        precision: session.device.precision,
        vae: session.vae.as_ref(),
        source,
        seconds,
        scratch: &scratch.0,
    }
    .run()?;
    match format {
        ListFormat::Text => print!("{}", crate::bench::models::text(&report)),
        ListFormat::Json => super::print_json(&report),
    }
    Ok(ExitCode::SUCCESS)
}
