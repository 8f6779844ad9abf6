//! `search` (stored embeddings against text, image and moment queries) and `describe` (one
//! output's scenes against labels).
use std::path::Path;
use std::process::ExitCode;

use super::error::CommandResult;
use super::Global;
use crate::cli::{ListFormat, SearchArgs};
use crate::session::model_device;

pub fn search(args: SearchArgs, global: Global) -> CommandResult {
    use crate::search::{self, corpus::Rows};
    let device = model_device(&args.device, global.precision)?;
    let mut texts = args.texts.clone();
    if let Some(file) = &args.queries {
        texts.extend(search::read_lines(file)?);
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
        rank: args.rank,
    };
    let report = search::search(&request)?;
    match args.format {
        ListFormat::Text => print!("{}", search::present::search_text(&report)),
        ListFormat::Json => super::print_json(&report),
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
pub fn describe(
    output: &Path,
    model: &Path,
    labels: &[String],
    templates: &[String],
    top: Option<usize>,
    format: ListFormat,
    device: &str,
    global: Global,
) -> CommandResult {
    use crate::search::{describe, present};
    let device = model_device(device, global.precision)?;
    let labels = describe::read_labels(labels)?;
    let d = describe::describe(output, model, device.name, &labels, templates, top)?;
    match format {
        ListFormat::Text => print!("{}", present::describe_text(&d)),
        ListFormat::Json => super::print_json(&d),
    }
    Ok(ExitCode::SUCCESS)
}
