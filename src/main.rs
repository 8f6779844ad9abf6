//! The `framepipe` binary: parse flags, set up logging, dispatch, and map outcomes to exit codes
//! (0 all inputs done, 1 some input failed, 2 usage or configuration error).
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use framepipe::cli::{Cli, Command};
use framepipe::config::PipelineConfig;
use framepipe::device::{self, DeviceRequest};
use framepipe::error::Error;
use framepipe::job::{output_stem, Job};
use framepipe::logging::Severity;

const EXIT_INPUT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// `--precision` from the command line (it wins over a pipeline's `runtime.precision`).
static PRECISION_FLAG: std::sync::OnceLock<Option<framepipe::config::Precision>> =
    std::sync::OnceLock::new();

fn main() -> ExitCode {
    let cli = Cli::parse();
    framepipe::logging::init(cli.verbose, cli.quiet, cli.log_format);
    PRECISION_FLAG.get_or_init(|| cli.precision);
    match cli.command {
        Command::Probe { input } => probe(&input),
        Command::Devices => devices(),
        Command::Vae {
            model,
            device,
            action,
        } => vae(&model, &device, action),
        Command::Clip {
            model,
            images,
            texts,
            device,
        } => clip(&model, &images, &texts, &device),
        Command::Batch {
            pipeline,
            output,
            manifest,
            jobs,
            shard,
            retries,
            redo_stale,
            force,
            device,
            devices,
            inputs,
        } => {
            // `0,1` means cuda:0, cuda:1; names pass through.
            let devices: Vec<String> = devices
                .iter()
                .map(|d| match d.trim().parse::<u32>() {
                    Ok(n) => format!("cuda:{n}"),
                    Err(_) => d.trim().to_string(),
                })
                .collect();
            let first = devices.first().cloned().or(device);
            let args = BatchArgs {
                manifest,
                jobs,
                shard,
                retries,
                redo_stale,
                force,
                more_devices: devices.into_iter().skip(1).collect(),
            };
            batch(
                pipeline.as_deref(),
                &output,
                first.as_deref(),
                &inputs,
                &args,
                cli.quiet,
            )
        }
        Command::BatchSummary { output } => match framepipe::batch::merge_summaries(&output) {
            Ok(s) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s).expect("summary serializes")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                report_error(&e);
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Check {
            rules,
            junit,
            format,
            jobs,
            inputs,
        } => check(&rules, junit.as_deref(), format, jobs, &inputs),
        Command::Search(args) => search(args),
        Command::MakeRandomModel { folder, seed } => {
            call_and_print(&framepipe_proto::ops::InitRandom { folder, seed })
        }
        Command::Bench {
            pipeline,
            device,
            models: true,
            seconds,
            format,
            input,
            ..
        } => bench_models(
            pipeline.as_deref(),
            device.as_deref(),
            seconds,
            format,
            input.as_deref(),
        ),
        Command::Bench {
            pipeline,
            device,
            encode_baseline,
            format,
            input,
            ..
        } => bench(
            pipeline.as_deref(),
            device.as_deref(),
            encode_baseline,
            format,
            input
                .as_deref()
                .expect("clap requires INPUT without --models"),
        ),
        Command::Describe {
            output,
            model,
            labels,
            templates,
            top,
            format,
            device,
        } => describe(&output, &model, &labels, &templates, top, format, &device),
        Command::Run {
            pipeline,
            output,
            device,
            inputs,
        } => run(
            pipeline.as_deref(),
            &output,
            device.as_deref(),
            &inputs,
            cli.quiet,
        ),
    }
}

/// What both bench modes settle first: a scratch folder for outputs (removed afterwards) and
/// the run's config, device and models.
fn prepare_bench(
    pipeline: Option<&Path>,
    device_flag: Option<&str>,
) -> Result<(PathBuf, Prepared), ExitCode> {
    let scratch = std::env::temp_dir().join(format!("framepipe-bench-{}", std::process::id()));
    match prepare(pipeline, &scratch, device_flag) {
        Ok(prepared) => Ok((scratch, prepared)),
        Err(e) => {
            report_error(&e);
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

fn bench(
    pipeline: Option<&Path>,
    device_flag: Option<&str>,
    encode_baseline: bool,
    format: framepipe::cli::ListFormat,
    input: &Path,
) -> ExitCode {
    let (scratch, (config, device, labels, vae)) = match prepare_bench(pipeline, device_flag) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let job = Job {
        config: &config,
        out_dir: &scratch,
        device: &device,
        show_progress: false,
        threads_per_input: 0,
        labels: labels.as_ref(),
        vae: vae.as_ref(),
    };
    let sampler = device
        .name
        .cuda_index()
        .and_then(framepipe::bench::GpuSampler::start);
    let result = job.process_into(input, Path::new("bench"));
    let gpu = sampler.and_then(|s| s.finish());
    let baseline = match (&result, encode_baseline) {
        (Ok(_), true) => {
            let mut plain = config.clone();
            plain.clip = None;
            plain.vae = None;
            plain.scenes = None;
            if plain.encode.is_none() {
                plain.encode = Some(Default::default());
            }
            let job = Job {
                config: &plain,
                labels: None,
                vae: None,
                ..job
            };
            Some(job.process_into(input, Path::new("baseline")))
        }
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_INPUT_FAILED);
        }
    };
    let baseline = match baseline.transpose() {
        Ok(b) => b,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_INPUT_FAILED);
        }
    };
    let summary =
        framepipe::bench::summarize(&done.report, gpu, baseline.as_ref().map(|b| &b.report));
    match format {
        framepipe::cli::ListFormat::Text => print!("{}", framepipe::bench::text(&summary)),
        framepipe::cli::ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("bench serializes")
        ),
    }
    ExitCode::SUCCESS
}

/// `bench --models`: the pipeline's model stages on synthetic frames (see bench::models).
fn bench_models(
    pipeline: Option<&Path>,
    device_flag: Option<&str>,
    seconds: f64,
    format: framepipe::cli::ListFormat,
    input: Option<&Path>,
) -> ExitCode {
    use framepipe::bench::models::{ModelsBench, SourceShape};
    if !(0.0..=600.0).contains(&seconds) {
        say_error(&format!("--seconds {seconds}: give 0 to 600"));
        return ExitCode::from(EXIT_USAGE);
    }
    let (scratch, (config, device, _labels, vae)) = match prepare_bench(pipeline, device_flag) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let source = match input.map(framepipe::media::probe::probe).transpose() {
        Ok(Some(info)) => SourceShape {
            width: info.width,
            height: info.height,
            sar: (info.sample_aspect_ratio[0], info.sample_aspect_ratio[1]),
            rotation: info.rotation,
        },
        Ok(None) => SourceShape::default(),
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_INPUT_FAILED);
        }
    };
    let result = ModelsBench {
        config: &config,
        device: device.name,
        precision: device.precision,
        vae: vae.as_ref(),
        source,
        seconds,
        scratch: &scratch,
    }
    .run();
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(report) => {
            match format {
                framepipe::cli::ListFormat::Text => {
                    print!("{}", framepipe::bench::models::text(&report))
                }
                framepipe::cli::ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_error(&e);
            ExitCode::from(EXIT_INPUT_FAILED)
        }
    }
}

fn search_exit(e: &framepipe::search::SearchError) -> ExitCode {
    say_error(&e.to_string());
    ExitCode::from(match e {
        framepipe::search::SearchError::Usage(_) => EXIT_USAGE,
        framepipe::search::SearchError::Failed(_) => EXIT_INPUT_FAILED,
    })
}

fn search(args: framepipe::cli::SearchArgs) -> ExitCode {
    use framepipe::search::{self, corpus::Rows};
    let device = match model_device(&args.device) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut texts = args.texts.clone();
    if let Some(file) = &args.queries {
        match search::read_lines(file) {
            Ok(lines) => texts.extend(lines),
            Err(e) => return search_exit(&e),
        }
    }
    let request = search::SearchRequest {
        dirs: &args.dirs,
        model: &args.model,
        device: device.name,
        texts,
        images: &args.images,
        moments: &args.like,
        top: args.top,
        min_score: args.min_score,
        rows: if args.frames {
            Rows::Frames
        } else {
            Rows::Scenes
        },
        export_clips: args.export_clips.as_deref(),
    };
    match search::search(&request) {
        Ok(report) => {
            match args.format {
                framepipe::cli::ListFormat::Text => {
                    print!("{}", search::present::search_text(&report))
                }
                framepipe::cli::ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => search_exit(&e),
    }
}

fn describe(
    output: &Path,
    model: &Path,
    labels: &[String],
    templates: &[String],
    top: Option<usize>,
    format: framepipe::cli::ListFormat,
    device: &str,
) -> ExitCode {
    use framepipe::search::{describe, present};
    let device = match model_device(device) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let result = describe::read_labels(labels)
        .and_then(|labels| describe::describe(output, model, device.name, &labels, templates, top));
    match result {
        Ok(d) => {
            match format {
                framepipe::cli::ListFormat::Text => print!("{}", present::describe_text(&d)),
                framepipe::cli::ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&d).expect("description serializes")
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => search_exit(&e),
    }
}

/// `error: <message>` and then each cause on its own line (one JSON line with `--log-format json`).
fn report_error(error: &dyn std::error::Error) {
    framepipe::logging::error(None, error);
}

/// An error without a cause chain.
fn say_error(message: &str) {
    framepipe::logging::say(Severity::Error, None, message, &[]);
}

fn probe(input: &Path) -> ExitCode {
    match framepipe::media::probe::probe(input) {
        Ok(info) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&info).expect("probe info serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_error(&e);
            ExitCode::from(EXIT_INPUT_FAILED)
        }
    }
}

/// What libtorch sees: loads the libtorch library, so it also proves that it loads.
fn devices() -> ExitCode {
    let torch = match framepipe::torch::Torch::get() {
        Ok(t) => t,
        Err(message) => {
            say_error(&format!("libtorch: {message}"));
            return ExitCode::from(EXIT_INPUT_FAILED);
        }
    };
    /// `framepipe devices` prints what libtorch sees and which library answered.
    #[derive(serde::Serialize)]
    struct Devices<'a> {
        #[serde(flatten)]
        seen: framepipe_proto::ops::DevicesReply,
        library: &'a Path,
    }
    match torch.call(&framepipe_proto::ops::Devices {}) {
        Ok(seen) => {
            let reply = Devices {
                seen,
                library: torch.path(),
            };
            println!("{}", serde_json::to_string_pretty(&reply).expect("JSON"));
            ExitCode::SUCCESS
        }
        Err(message) => {
            say_error(&format!("libtorch: {message}"));
            ExitCode::from(EXIT_INPUT_FAILED)
        }
    }
}

fn check(
    rules_path: &Path,
    junit: Option<&Path>,
    format: framepipe::cli::CheckFormat,
    jobs: Option<usize>,
    inputs: &[PathBuf],
) -> ExitCode {
    use framepipe::check;
    let rules = match check::rules::RulesFile::load(rules_path) {
        Ok(r) => r,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let files = check::expand_inputs(inputs);
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let (results, unmatched) = check::check_all(&rules, &files, jobs);
    for path in &unmatched {
        framepipe::logging::say(
            Severity::Warning,
            Some(&path.display().to_string()),
            &format!("warning: {}: no rule set applies", path.display()),
            &[],
        );
    }
    let stdout = match format {
        framepipe::cli::CheckFormat::Text => check::output::text(&results),
        framepipe::cli::CheckFormat::Json => check::output::json(&results),
        framepipe::cli::CheckFormat::Github => check::output::github(&results),
    };
    print!("{stdout}");
    if let Some(path) = junit {
        if let Err(e) = std::fs::write(path, check::output::junit(&results)) {
            report_error(&Error::io(path, "writing the JUnit report", e));
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if results.iter().any(|r| r.failures().next().is_some()) {
        ExitCode::from(EXIT_INPUT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The device a model command computes on (loads libtorch); a usage error when it is not there.
fn model_device(text: &str) -> Result<device::DeviceInfo, ExitCode> {
    let precision = PRECISION_FLAG.get().copied().flatten().unwrap_or_default();
    DeviceRequest::parse(text)
        .and_then(|r| device::select(r, true))
        .and_then(|mut d| {
            if !d.name.is_cuda() {
                framepipe::cpu_memory::tune_for_cpu_inference();
            }
            device::configure_models(&mut d, precision).map(|_| d)
        })
        .map_err(|message| {
            report_error(&Error::Device {
                requested: text.to_string(),
                message,
            });
            ExitCode::from(EXIT_USAGE)
        })
}

/// Sends a request to the libtorch side and prints its JSON reply (exit 1 with its error).
fn call_and_print<O: framepipe_proto::CallOp>(request: &O) -> ExitCode {
    match framepipe::torch::Torch::get().and_then(|t| Ok(t.call(request)?)) {
        Ok(reply) => {
            println!("{}", serde_json::to_string_pretty(&reply).expect("JSON"));
            ExitCode::SUCCESS
        }
        Err(message) => {
            say_error(&message);
            ExitCode::from(EXIT_INPUT_FAILED)
        }
    }
}

/// `framepipe vae`: encode or decode through the libtorch side.
fn vae(model: &Path, device_text: &str, action: framepipe::cli::VaeAction) -> ExitCode {
    use framepipe::cli::VaeAction;
    let device = match model_device(device_text) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let is_image = |p: &PathBuf| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "png" | "jpg" | "jpeg" | "bmp" | "webp"
            )
        })
    };
    if let VaeAction::Encode {
        images,
        output,
        dtype,
        check,
    } = &action
    {
        if images.iter().any(|p| !is_image(p)) {
            if images.len() != 1 || *check {
                say_error("give one video (without --check), or images only");
                return ExitCode::from(EXIT_USAGE);
            }
            return match framepipe::vae_video::encode_video(
                &images[0],
                model,
                device.name,
                output,
                *dtype == framepipe_proto::ops::LatentDtype::F16,
            ) {
                Ok(reply) => {
                    println!("{}", serde_json::to_string_pretty(&reply).expect("JSON"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    report_error(&e);
                    ExitCode::from(EXIT_INPUT_FAILED)
                }
            };
        }
    }
    let on = framepipe_proto::ops::ModelOn {
        model: model.to_path_buf(),
        device: device.name,
    };
    match action {
        VaeAction::Encode {
            images,
            output,
            dtype,
            check,
        } => call_and_print(&framepipe_proto::ops::VaeEncodeImages {
            on,
            images,
            out: output,
            dtype,
            check,
        }),
        VaeAction::Decode { latents, output } => {
            call_and_print(&framepipe_proto::ops::VaeDecodeLatents {
                on,
                latents,
                out_dir: output,
            })
        }
    }
}

/// `framepipe clip`: the libtorch side does the work; this resolves the device and prints.
fn clip(model: &Path, images: &[PathBuf], texts: &[String], device_text: &str) -> ExitCode {
    if images.is_empty() && texts.is_empty() {
        say_error("give at least one --image or --text");
        return ExitCode::from(EXIT_USAGE);
    }
    let device = match model_device(device_text) {
        Ok(d) => d,
        Err(code) => return code,
    };
    call_and_print(&framepipe_proto::ops::ClipRun {
        on: framepipe_proto::ops::ModelOn {
            model: model.to_path_buf(),
            device: device.name,
        },
        images: images.to_vec(),
        texts: texts.to_vec(),
    })
}

fn load_config(pipeline: Option<&Path>) -> Result<PipelineConfig, Error> {
    match pipeline {
        Some(path) => PipelineConfig::load(path),
        None => {
            let builtin = Path::new("<built-in default pipeline>");
            let cfg = PipelineConfig::parse(framepipe::DEFAULT_PIPELINE)
                .map_err(|m| Error::config(builtin, m))?;
            cfg.validate()
                .map_err(|e| Error::config(builtin, e.to_string()))?;
            Ok(cfg)
        }
    }
}

/// Creates the output folder and proves it is writable before any input is decoded.
fn prepare_output_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir, "cannot create the output folder", e))?;
    let probe = dir.join(format!(".framepipe-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| Error::io(dir, "output folder is not writable", e))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

struct BatchArgs {
    manifest: Option<PathBuf>,
    jobs: usize,
    shard: Option<String>,
    retries: u32,
    redo_stale: bool,
    force: bool,
    /// Devices beyond the first of `--devices` (the first goes through the usual `--device`).
    more_devices: Vec<String>,
}

/// What `run` and `batch` settle before any input: config, device, the models' facts.
type Prepared = (
    PipelineConfig,
    device::DeviceInfo,
    Option<framepipe::tags::LabelSet>,
    Option<framepipe::job::VaeInfo>,
);

/// Settles config, device and output folder for `run` and `batch`.
fn prepare(
    pipeline: Option<&Path>,
    out_dir: &Path,
    device_flag: Option<&str>,
) -> Result<Prepared, Error> {
    let config = load_config(pipeline)?;
    let device_text = device_flag.unwrap_or(&config.device).to_string();
    // Only model stages compute on the device; without one, libtorch is loaded only to validate
    // an explicit `cuda:N`.
    let needs_device = config.clip.is_some() || config.vae.is_some();
    let precision = PRECISION_FLAG
        .get()
        .copied()
        .flatten()
        .unwrap_or(config.runtime.precision);
    let device = DeviceRequest::parse(&device_text)
        .and_then(|r| device::select(r, needs_device))
        .and_then(|mut d| {
            if needs_device {
                device::configure_models(&mut d, precision)?;
            }
            Ok(d)
        })
        .map_err(|message| Error::Device {
            requested: device_text,
            message,
        })?;
    if needs_device && !device.name.is_cuda() {
        framepipe::cpu_memory::tune_for_cpu_inference();
    }
    // The CLIP model loads and the label embeddings are computed before any input is decoded:
    // a bad model folder is a configuration error, found at once.
    let labels = match &config.clip {
        Some(clip) => Some(
            framepipe::tags::LabelSet::load(clip, device.name).map_err(|m| {
                Error::config(
                    pipeline.unwrap_or(Path::new("<built-in default pipeline>")),
                    format!("clip: {m}"),
                )
            })?,
        ),
        None => None,
    };
    // Likewise the VAE: loaded (and its latent scaling read) before decoding.
    let vae = match &config.vae {
        Some(vae) => {
            let request = framepipe_proto::ops::VaeInfo {
                on: framepipe_proto::ops::ModelOn {
                    model: vae.model.clone(),
                    device: device.name,
                },
            };
            let info = framepipe::torch::Torch::get()
                .and_then(|t| Ok(t.call(&request)?))
                .map_err(|m| {
                    Error::config(
                        pipeline.unwrap_or(Path::new("<built-in default pipeline>")),
                        format!("vae: {m}"),
                    )
                })?;
            // Tiling and sampling exist only for AutoencoderKL: refused now, not mid-video.
            let kl_only = [
                ("vae.tiling", vae.tiling),
                ("vae.sample_seed", vae.sample_seed.is_some()),
            ];
            if let Some((key, _)) = kl_only.iter().find(|(_, set)| *set && !info.class.is_kl()) {
                return Err(Error::config(
                    pipeline.unwrap_or(Path::new("<built-in default pipeline>")),
                    format!(
                        "{key} applies to AutoencoderKL models; {} is a {} model",
                        vae.model.display(),
                        info.class.name()
                    ),
                ));
            }
            Some(info)
        }
        None => None,
    };
    prepare_output_dir(out_dir)?;
    Ok((config, device, labels, vae))
}

fn batch(
    pipeline: Option<&Path>,
    out_dir: &Path,
    device_flag: Option<&str>,
    inputs: &[PathBuf],
    args: &BatchArgs,
    quiet: bool,
) -> ExitCode {
    use framepipe::batch::{self, Options, Shard};
    use std::sync::atomic::{AtomicBool, Ordering};
    let (config, device, labels, vae) = match prepare(pipeline, out_dir, device_flag) {
        Ok(v) => v,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let shard = match args.shard.as_deref() {
        Some(text) => Shard::parse(text).map(Some),
        None => Shard::from_env(),
    };
    let shard = match shard {
        Ok(s) => s,
        Err(message) => {
            say_error(&format!("shard: {message}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let items = match batch::collect_items(inputs, args.manifest.as_deref()) {
        Ok(items) if !items.is_empty() => items,
        Ok(_) => {
            say_error("no inputs (give files, folders or --manifest)");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // First signal: start nothing new, let running inputs finish. Second: leave now (outputs
        // stay consistent: unfinished inputs are only .partial folders, cleaned on the rerun).
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            framepipe::logging::say(
                Severity::Warning,
                None,
                "stopping: no new inputs; waiting for the running ones (signal again to quit now)",
                &[],
            );
        });
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // One replica per extra device: each is checked (a missing GPU is an error, not a silent
    // CPU run) and gets the same precision as the first.
    let mut all_devices = vec![device.clone()];
    for name in &args.more_devices {
        let precision = device.precision;
        let checked = DeviceRequest::parse(name)
            .and_then(|r| device::select(r, true))
            .map(|mut d| {
                d.precision = precision;
                d
            });
        match checked {
            Ok(d) => all_devices.push(d),
            Err(message) => {
                report_error(&Error::Device {
                    requested: name.clone(),
                    message,
                });
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let jobs = args.jobs.max(all_devices.len());
    let threads_per_input = if jobs > 1 {
        (cores / jobs).max(1) as u32
    } else {
        0
    };
    let job_list: Vec<Job> = all_devices
        .iter()
        .map(|d| Job {
            config: &config,
            out_dir,
            device: d,
            show_progress: false,
            threads_per_input,
            labels: labels.as_ref(),
            vae: vae.as_ref(),
        })
        .collect();
    let options = Options {
        jobs,
        shard,
        retries: args.retries,
        force: args.force,
        redo_stale: args.redo_stale,
        show_progress: !quiet,
    };
    match batch::run(&job_list, &items, &options, stop.clone()) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::to_string(&summary).expect("summary serializes")
            );
            if stop.load(Ordering::Relaxed) {
                ExitCode::from(130)
            } else if summary.failed > 0 {
                ExitCode::from(EXIT_INPUT_FAILED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            report_error(&e);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(
    pipeline: Option<&Path>,
    out_dir: &Path,
    device_flag: Option<&str>,
    inputs: &[PathBuf],
    quiet: bool,
) -> ExitCode {
    let (config, device, labels, vae) = match prepare(pipeline, out_dir, device_flag) {
        Ok(v) => v,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let job = Job {
        config: &config,
        out_dir,
        device: &device,
        show_progress: !quiet,
        threads_per_input: 0,
        labels: labels.as_ref(),
        vae: vae.as_ref(),
    };
    let mut failed = 0usize;
    let mut stems = HashSet::new();
    for input in inputs {
        let stem = output_stem(input);
        if !stems.insert(stem.clone()) {
            report_error(&Error::input(
                input,
                format!(
                    "another input of this run also writes {}/{stem}/; rename one of them",
                    out_dir.display()
                ),
            ));
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
            }
            Err(e) => {
                framepipe::logging::error(Some(&input.display().to_string()), &e);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        if inputs.len() > 1 {
            framepipe::logging::say(
                Severity::Error,
                None,
                &format!("{failed} of {} inputs failed", inputs.len()),
                &[],
            );
        }
        ExitCode::from(EXIT_INPUT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
