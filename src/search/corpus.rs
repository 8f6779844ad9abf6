//! The search corpus: every finished output under some folders, its report's scenes and
//! samples, and its stored CLIP rows (`embeddings.safetensors`, memory-mapped), gathered into
//! one fp16 matrix whose rows are scenes (the normalized mean of their samples, as tagging
//! computes it) or sampled frames.
//!
//! Outputs that cannot take part are skipped with the reason (another schema, no CLIP stage,
//! missing or corrupt embeddings); outputs made by different CLIP models cannot be compared and
//! make the whole corpus an error.
use std::path::{Path, PathBuf};

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::output::files::DONE_MARKER;

use crate::output::report::{Report, SampleReport as SampleView};
/// A scene of a stored output, as its report has it.
pub use crate::output::scene::Scene as SceneSpan;

/// One finished output that takes part.
#[derive(Debug, Clone)]
pub struct Output {
    pub dir: PathBuf,
    /// The input it was made from.
    pub source: String,
    /// Its normalized video, when the pipeline wrote one.
    pub video: Option<PathBuf>,
    pub scenes: Vec<SceneSpan>,
    /// The prompt templates its tags used.
    pub templates: Vec<String>,
}

/// What one row of the matrix stands for.
#[derive(Debug, Clone)]
pub struct Unit {
    pub output: usize,
    /// Index into the output's scenes.
    pub scene: usize,
    /// The sampled frame (frame rows only) and its time.
    pub frame: Option<(u64, f64)>,
}

/// An output that was left out, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    Scenes,
    Frames,
}

/// The matrix and what its rows mean.
#[derive(Debug, Default)]
pub struct Corpus {
    pub outputs: Vec<Output>,
    pub units: Vec<Unit>,
    /// fp16 bit patterns, `units.len()` x `dim`, each row L2-normalized.
    pub rows: Vec<u16>,
    pub dim: usize,
    /// The CLIP model (path as recorded, fingerprint) of every row.
    pub model: Option<(String, String)>,
    pub skipped: Vec<Skipped>,
}

/// Finished output folders under `root` (a folder holding [`DONE_MARKER`]), sorted.
pub fn find_outputs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join(DONE_MARKER).is_file() {
            found.push(dir);
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let partial = path.extension().is_some_and(|e| e == "partial");
                if entry.file_type().is_ok_and(|t| t.is_dir()) && !partial {
                    stack.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

/// The report of an output folder: `<dir>/<dir name>.json`.
pub fn report_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.join(format!("{name}.json"))
}

/// One output's stored rows and the model that made them.
pub struct Stored {
    output: Output,
    samples: Vec<SampleView>,
    model: (String, String),
    dim: usize,
    /// fp16 bit patterns, `samples.len()` x `dim`.
    rows: Vec<u16>,
}

impl Stored {
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The model that made the rows: (path as recorded, fingerprint).
    pub fn model(&self) -> &(String, String) {
        &self.model
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Each scene's embedding (index into the scenes, unit vector): the normalized mean of
    /// its samples' rows, as the run's scene tags were computed. Scenes without a sample
    /// have none.
    pub fn scene_embeddings(&self) -> Vec<(usize, Vec<f32>)> {
        // Samples by frame, so each scene's are one contiguous run.
        let mut by_frame: Vec<&SampleView> = self.samples.iter().collect();
        by_frame.sort_by_key(|s| s.frame);
        let mut out = Vec::new();
        for (i, scene) in self.output.scenes.iter().enumerate() {
            let first = by_frame.partition_point(|s| s.frame < scene.start_frame);
            let end = by_frame.partition_point(|s| s.frame < scene.end_frame);
            let rows: Vec<Vec<f32>> = by_frame[first..end.max(first)]
                .iter()
                .map(|s| self.row_f32(s.row))
                .collect();
            if let Some(mean) = crate::tagging::mean_embedding(rows.iter().map(Vec::as_slice)) {
                out.push((i, mean));
            }
        }
        out
    }

    /// Stored row `row` as f32.
    fn row_f32(&self, row: usize) -> Vec<f32> {
        let values: Vec<f16> = self.rows[row * self.dim..(row + 1) * self.dim]
            .iter()
            .map(|&b| f16::from_bits(b))
            .collect();
        let mut out = vec![0f32; self.dim];
        values.convert_to_f32_slice(&mut out);
        out
    }
}

/// Reads one output folder; `Err` is the reason to skip it.
pub fn read_output(dir: &Path) -> Result<Stored, String> {
    let report_file = report_path(dir);
    let report = Report::read(&report_file).map_err(|e| e.to_string())?;
    let clip = report
        .clip
        .ok_or("no CLIP embeddings (the pipeline had no clip stage)")?;
    let hash = clip.model_hash;
    let samples = report.samples.unwrap_or_default();
    let file = dir.join(&clip.embeddings);
    let rows = read_rows(&file, clip.samples, clip.dim)?;
    if samples.iter().any(|s| s.row >= clip.samples) {
        return Err(format!(
            "{}: the report's samples point past its {} rows",
            report_file.display(),
            clip.samples
        ));
    }
    Ok(Stored {
        output: Output {
            dir: dir.to_path_buf(),
            source: report.source.path,
            video: report.output.video.map(|v| dir.join(v)),
            scenes: report.scenes,
            templates: clip.templates,
        },
        samples,
        model: (clip.model, hash),
        dim: clip.dim,
        rows,
    })
}

/// `image_embeds` of an embeddings file, checked against the report's row count and size.
fn read_rows(file: &Path, count: usize, dim: usize) -> Result<Vec<u16>, String> {
    let handle =
        std::fs::File::open(file).map_err(|e| format!("embeddings {}: {e}", file.display()))?;
    // SAFETY: the file is only read; a concurrent writer would at worst give wrong values,
    // which the shape checks below do not catch but cannot turn into memory errors.
    let map = unsafe { memmap2::Mmap::map(&handle) }
        .map_err(|e| format!("embeddings {}: {e}", file.display()))?;
    let tensors = safetensors::SafeTensors::deserialize(&map)
        .map_err(|e| format!("embeddings {}: corrupt ({e})", file.display()))?;
    let embeds = tensors
        .tensor(crate::output::tensors::IMAGE_EMBEDS)
        .map_err(|_| format!("embeddings {}: no image_embeds tensor", file.display()))?;
    if embeds.dtype() != safetensors::Dtype::F16 || embeds.shape() != [count, dim] {
        return Err(format!(
            "embeddings {}: image_embeds is {:?} {:?}, the report says F16 [{count}, {dim}]",
            file.display(),
            embeds.dtype(),
            embeds.shape()
        ));
    }
    let data = embeds.data();
    let mut rows = vec![0u16; data.len() / 2];
    if cfg!(target_endian = "little") {
        // SAFETY: `rows` holds exactly `data.len()` bytes; u16 accepts any bit pattern; the
        // mapped data may be unaligned, so it is copied bytewise.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), rows.as_mut_ptr().cast::<u8>(), data.len())
        };
    } else {
        rows.iter_mut()
            .zip(data.chunks_exact(2))
            .for_each(|(r, b)| *r = u16::from_le_bytes([b[0], b[1]]));
    }
    Ok(rows)
}

/// The scene of `frame` (the last one when past the end).
fn scene_of(scenes: &[SceneSpan], frame: u64) -> usize {
    // Scenes are in order and contiguous: the first one ending after the frame.
    scenes
        .partition_point(|s| s.end_frame <= frame)
        .min(scenes.len().saturating_sub(1))
}

impl Corpus {
    /// Gathers every finished output under `roots` with `rows` as the matrix's rows.
    pub fn load(roots: &[PathBuf], rows: Rows) -> Result<Corpus, String> {
        let mut corpus = Corpus::default();
        for root in roots {
            if !root.is_dir() {
                return Err(format!("{}: no such folder", root.display()));
            }
            for dir in find_outputs(root) {
                match read_output(&dir) {
                    Ok(stored) => corpus.add(stored, rows)?,
                    Err(reason) => {
                        tracing::warn!(output = %dir.display(), "skipped: {reason}");
                        corpus.skipped.push(Skipped {
                            path: dir.display().to_string(),
                            reason,
                        });
                    }
                }
            }
        }
        Ok(corpus)
    }

    fn add(&mut self, stored: Stored, rows: Rows) -> Result<(), String> {
        match &self.model {
            None => {
                self.model = Some(stored.model.clone());
                self.dim = stored.dim;
            }
            Some((model, hash)) if *hash != stored.model.1 => {
                let first = self.outputs.first().map(|o| o.dir.display().to_string());
                return Err(format!(
                    "embeddings of different CLIP models cannot be searched together: {} ({hash}) in {}, {} ({}) in {}",
                    model,
                    first.unwrap_or_default(),
                    stored.model.0,
                    stored.model.1,
                    stored.output.dir.display()
                ));
            }
            Some(_) => {}
        }
        let output = self.outputs.len();
        let dim = stored.dim;
        match rows {
            Rows::Frames => {
                for s in &stored.samples {
                    self.units.push(Unit {
                        output,
                        scene: scene_of(&stored.output.scenes, s.frame),
                        frame: Some((s.frame, s.time)),
                    });
                    self.rows
                        .extend_from_slice(&stored.rows[s.row * dim..(s.row + 1) * dim]);
                }
            }
            Rows::Scenes => {
                for (scene, embedding) in stored.scene_embeddings() {
                    self.units.push(Unit {
                        output,
                        scene,
                        frame: None,
                    });
                    self.rows
                        .extend(embedding.iter().map(|&v| f16::from_f32(v).to_bits()));
                }
            }
        }
        self.outputs.push(stored.output);
        Ok(())
    }
}
