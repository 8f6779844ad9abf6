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

const EXIT_INPUT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    match cli.command {
        Command::Probe { input } => probe(&input),
        Command::Devices => devices(),
        Command::Check {
            rules,
            junit,
            format,
            jobs,
            inputs,
        } => check(&rules, junit.as_deref(), format, jobs, &inputs),
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

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `error: <message>` and then each cause on its own line.
fn report_error(error: &dyn std::error::Error) {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
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
            eprintln!("error: libtorch: {message}");
            return ExitCode::from(EXIT_INPUT_FAILED);
        }
    };
    match torch.call(&serde_json::json!({"op": "devices"})) {
        Ok(mut reply) => {
            reply["library"] = serde_json::json!(torch.path());
            println!("{}", serde_json::to_string_pretty(&reply).expect("JSON"));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: libtorch: {message}");
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
        eprintln!("warning: {}: no rule set applies", path.display());
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

fn load_config(pipeline: Option<&Path>) -> Result<PipelineConfig, Error> {
    match pipeline {
        Some(path) => PipelineConfig::load(path),
        None => {
            let builtin = Path::new("<built-in default pipeline>");
            let cfg = PipelineConfig::parse(framepipe::DEFAULT_PIPELINE)
                .map_err(|m| Error::config(builtin, m))?;
            cfg.validate().map_err(|m| Error::config(builtin, m))?;
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

fn run(
    pipeline: Option<&Path>,
    out_dir: &Path,
    device_flag: Option<&str>,
    inputs: &[PathBuf],
    quiet: bool,
) -> ExitCode {
    let config = match load_config(pipeline) {
        Ok(c) => c,
        Err(e) => {
            report_error(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let device_text = device_flag.unwrap_or(&config.device).to_string();
    // No stage of this version computes on a device yet: libtorch is loaded only to validate an
    // explicit `cuda:N`.
    let needs_device = false;
    let device =
        match DeviceRequest::parse(&device_text).and_then(|r| device::select(r, needs_device)) {
            Ok(d) => d,
            Err(message) => {
                report_error(&Error::Device {
                    requested: device_text,
                    message,
                });
                return ExitCode::from(EXIT_USAGE);
            }
        };
    if let Err(e) = prepare_output_dir(out_dir) {
        report_error(&e);
        return ExitCode::from(EXIT_USAGE);
    }
    let job = Job {
        config: &config,
        out_dir,
        device: &device,
        show_progress: !quiet,
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
                report_error(&e);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        if inputs.len() > 1 {
            eprintln!("{failed} of {} inputs failed", inputs.len());
        }
        ExitCode::from(EXIT_INPUT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
