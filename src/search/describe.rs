//! `framepipe describe`: image→text for one processed output. Any label list is ranked for
//! each scene from the stored embeddings (zero-shot softmax over the labels, exactly as the
//! run's tags), so a collection can be re-labelled without decoding a frame.
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::corpus;
use super::SearchError;
use crate::output::scene::Tag;
use crate::tagging::LabelSet;

#[derive(Debug, Serialize)]
pub struct SceneLabels {
    pub scene: usize,
    pub start_time: f64,
    pub end_time: f64,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Serialize)]
pub struct Description {
    pub output: String,
    pub video: String,
    pub model: String,
    pub labels: Vec<String>,
    pub templates: Vec<String>,
    pub scenes: Vec<SceneLabels>,
}

/// Labels from the command line: a file gives one label per line (blank lines and `#`
/// comments skipped), anything else is a label itself.
pub fn read_labels(args: &[String]) -> Result<Vec<String>, SearchError> {
    let mut labels = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_file() {
            labels.extend(super::read_lines(path)?);
        } else {
            labels.push(arg.clone());
        }
    }
    if labels.is_empty() {
        return Err(SearchError::Usage("no labels given".into()));
    }
    Ok(labels)
}

/// Ranks `labels` for every scene of the output at `output` (its folder or report).
pub fn describe(
    output: &Path,
    model: &Path,
    device: crate::device::Device,
    labels: &[String],
    templates: &[String],
    top: Option<usize>,
) -> Result<Description, SearchError> {
    let dir: PathBuf = if output.is_file() {
        output.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        output.to_path_buf()
    };
    if !dir.is_dir() {
        return Err(SearchError::Usage(format!(
            "{}: no such output folder",
            output.display()
        )));
    }
    let stored = corpus::read_output(&dir)
        .map_err(|reason| SearchError::Failed(format!("{}: {reason}", dir.display())))?;
    let templates: Vec<String> = if templates.is_empty() {
        stored.output().templates.clone()
    } else {
        templates.to_vec()
    };
    if templates.is_empty() || templates.iter().any(|t| !t.contains("{}")) {
        return Err(SearchError::Usage(format!(
            "templates {templates:?}: each needs one {{}} for the label"
        )));
    }
    let set =
        LabelSet::with_templates(model, labels, &templates, device).map_err(SearchError::Usage)?;
    super::check_model(model, set.dim, stored.model(), stored.dim())?;
    let top = top.unwrap_or(labels.len());
    let scenes = stored
        .scene_embeddings()
        .into_iter()
        .map(|(i, embedding)| {
            let scene = &stored.output().scenes[i];
            SceneLabels {
                scene: scene.index,
                start_time: scene.start_time,
                end_time: scene.end_time,
                tags: set.tags(&embedding, top, 0.0),
            }
        })
        .collect();
    Ok(Description {
        output: dir.display().to_string(),
        video: stored.output().source.clone(),
        model: stored.model().0.clone(),
        labels: labels.to_vec(),
        templates,
        scenes,
    })
}
