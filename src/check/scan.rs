//! The one decode pass that serves every pixel rule of a file: decode errors and concealed
//! frames, black stretches, frozen stretches, scene count. Frames are shrunk once to a small gray
//! picture (and to the scene detector's BGR size only when a scene rule asks).
use std::path::Path;

use ff::software::scaling;
use ffmpeg_next as ff;

use super::audio::AudioAnalyzer;
use super::rules::{BlackRule, FrozenRule, Rules};
use crate::clips::looks;
use crate::error::{Error, Result};
use crate::media::decode::{SourceFrame, VideoDecoder};
use crate::media::probe::SourceInfo;
use crate::media::small::{SmallFrames, SmallGray};
use crate::scenes::{processing_size, ContentDetector, ContentDetectorConfig};

#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub frames: u64,
    pub decode_errors: u64,
    pub damaged_frames: u64,
    pub edit_list_discarded: u64,
    /// (start, end) seconds of each black stretch.
    pub black: Vec<(f64, f64)>,
    pub frozen: Vec<(f64, f64)>,
    pub scenes: Option<usize>,
    /// Present when an audio rule asked and the file has audio.
    pub audio: Option<super::audio::AudioScan>,
    /// Highest score each tag label reached over the sampled frames (tags rule only).
    pub tag_scores: Option<Vec<(String, f64)>>,
    /// The VAE's reconstruction of the sampled frames (vae_anomalies rule only, when any frame
    /// was sampled).
    pub vae: Option<VaeScan>,
    /// The text read on sampled frames (burned_in_text rule only).
    pub text: Option<super::text::TextScan>,
    /// Each head's score of the sampled frames' mean embedding (heads rule only, when any frame
    /// was sampled).
    pub heads: Option<HeadScan>,
    /// The file's pieces looked up in a dedup index (duplicate_of rule only).
    pub duplicates: Option<DuplicateScan>,
}

/// What the duplicate_of rule found.
#[derive(Debug, Clone)]
pub struct DuplicateScan {
    /// Pieces the file was cut into (shots, long ones split).
    pub pieces: usize,
    /// Clips in the index.
    pub indexed: usize,
    /// The highest similarity of any piece to an indexed clip (0 when no candidate came up).
    pub closest: f64,
    /// The pieces more similar to an indexed clip than the rule allows, with that clip.
    pub found: Vec<DuplicateFound>,
}

#[derive(Debug, Clone)]
pub struct DuplicateFound {
    /// The piece of the file, in seconds.
    pub at: (f64, f64),
    pub similarity: f64,
    /// The indexed clip: its id, output folder and time range there.
    pub id: String,
    pub output: String,
    pub start: f64,
    pub end: f64,
}

/// What the heads rule found.
#[derive(Debug, Clone)]
pub struct HeadScan {
    /// Frames sampled and embedded.
    pub frames: usize,
    /// Each head's score, by name, in the rule's order.
    pub scores: Vec<(String, f64)>,
}

/// What the vae_anomalies rule found.
#[derive(Debug, Clone)]
pub struct VaeScan {
    pub frames: usize,
    /// The size frames were reconstructed at.
    pub size: (u32, u32),
    pub median_psnr: f64,
    /// One frame's duration (the end of a range of flagged frames).
    pub frame_seconds: f64,
    pub findings: crate::reconstruction::Findings,
}

/// Frames for the vae_anomalies rule, scaled to the rule's size, encoded and decoded again in
/// batches through the libtorch library (one model call per batch returns their PSNRs).
struct VaeSampler {
    rule: super::rules::VaeAnomaliesRule,
    device: crate::device::Device,
    rgb: crate::media::RgbFrames,
    size: (u32, u32),
    batch: Vec<u8>,
    batch_frames: Vec<(u64, f64)>,
    samples: Vec<crate::reconstruction::FramePsnr>,
    latents: Vec<f32>,
}

impl VaeSampler {
    fn new(path: &Path, rule: &super::rules::VaeAnomaliesRule, info: &SourceInfo) -> Result<Self> {
        let device = crate::device::select(crate::device::DeviceRequest::Auto, true)
            .map_err(|m| Error::input(path, format!("vae_anomalies: {m}")))?
            .name;
        let grid = rule.downsampling.max(1);
        // The file's own size on the model's grid: the nearest multiple, at least one.
        let on_grid = |v: u32| (((v + grid / 2) / grid).max(1)) * grid;
        let size = match rule.size {
            Some([w, h]) => (w, h),
            None => (on_grid(info.width), on_grid(info.height)),
        };
        Ok(VaeSampler {
            rule: rule.clone(),
            device,
            rgb: crate::media::RgbFrames::new(size.0, size.1, scaling::Flags::BICUBIC),
            size,
            batch: Vec::new(),
            batch_frames: Vec::new(),
            samples: Vec::new(),
            latents: Vec::new(),
        })
    }

    /// Frames per model call: what the vae stage starts `"auto"` at.
    fn batch_size(&self) -> usize {
        crate::config::BatchSize::Auto.initial(self.device)
    }

    fn push(&mut self, path: &Path, index: u64, time: f64, frame: &ff::frame::Video) -> Result<()> {
        if !index.is_multiple_of(u64::from(self.rule.every_n_frames)) {
            return Ok(());
        }
        self.rgb
            .append(frame, None, &mut self.batch)
            .map_err(|e| Error::ffmpeg(path, "scaling a frame", e))?;
        self.batch_frames.push((index, time));
        if self.batch_frames.len() == self.batch_size() {
            self.flush(path)?;
        }
        Ok(())
    }

    fn flush(&mut self, path: &Path) -> Result<()> {
        let n = self.batch_frames.len();
        if n == 0 {
            return Ok(());
        }
        let torch = crate::torch::Torch::get()
            .map_err(|m| Error::input(path, format!("vae_anomalies: {m}")))?;
        let request = framepipe_proto::ops::VaeEncodeFrames {
            on: framepipe_proto::ops::ModelOn {
                model: self.rule.model.clone(),
                device: self.device,
            },
            frames: framepipe_proto::ops::Frames {
                n: n as u32,
                layout: crate::media::FrameLayout::rgb24(self.size.0, self.size.1),
                canvases: None,
            },
            tiling: false,
            sampling: None,
            reconstruct: Some(framepipe_proto::ops::Reconstruct {
                frames: (0..n as u32).collect(),
                picture: None,
            }),
        };
        // Room for the latents of any model of this grid (at most 64 channels); not kept.
        let grid = self.rule.downsampling.max(1) as usize;
        let cells = (self.size.0 as usize / grid) * (self.size.1 as usize / grid);
        self.latents.resize(n * 64 * cells, 0.0);
        let reply = torch
            .vae_encode_frames(&request, &self.batch, &mut self.latents)
            .map_err(|m| Error::input(path, format!("vae_anomalies: {m}")))?;
        let psnr = reply.psnr.unwrap_or_default();
        for (&(frame, time), psnr) in self.batch_frames.iter().zip(psnr) {
            self.samples
                .push(crate::reconstruction::FramePsnr { frame, time, psnr });
        }
        self.batch.clear();
        self.batch_frames.clear();
        Ok(())
    }

    fn finish(mut self, path: &Path, cuts: &[u64], fps: f64) -> Result<Option<VaeScan>> {
        self.flush(path)?;
        if self.samples.is_empty() {
            return Ok(None);
        }
        let mut starts = vec![0];
        starts.extend_from_slice(cuts);
        let findings = crate::reconstruction::find(&self.samples, &starts, self.rule.sensitivity);
        let mut psnr: Vec<f64> = self.samples.iter().map(|s| s.psnr).collect();
        psnr.sort_by(f64::total_cmp);
        Ok(Some(VaeScan {
            frames: self.samples.len(),
            size: self.size,
            median_psnr: psnr[psnr.len() / 2],
            frame_seconds: if fps > 0.0 { 1.0 / fps } else { 0.0 },
            findings,
        }))
    }
}

/// Sampled frames embedded with CLIP for the `tags` and `heads` rules: shrunk so their short
/// side is 224 (CLIP's input size; the model's own preprocessing then resizes exactly as
/// transformers does) and embedded in batches. One sampler serves both rules when they name the
/// same model and step, so each sample is embedded once.
struct EmbeddingSampler {
    model: std::path::PathBuf,
    every_n_frames: u32,
    /// The rules it serves, for messages ("tags", "heads" or "tags, heads").
    serves: String,
    device: crate::device::Device,
    dim: usize,
    rgb: crate::media::RgbFrames,
    size: (u32, u32),
    batch: Vec<u8>,
    batch_frames: usize,
    sampled: usize,
    tags: Option<TagPeaks>,
    heads: Option<HeadSum>,
}

/// The `tags` rule's running peak score of each label.
struct TagPeaks {
    labels: crate::tagging::LabelSet,
    peaks: Vec<f64>,
}

/// The `heads` rule's running sum of sample embeddings (normalized at the end: the mean
/// embedding a clip is scored on in `run`).
struct HeadSum {
    rule: super::rules::HeadsRule,
    sum: Vec<f32>,
}

impl EmbeddingSampler {
    const BATCH: usize = 16;

    /// The samplers `rules` needs: none, one, or two when `tags` and `heads` name different
    /// models or steps.
    fn for_rules(path: &Path, rules: &Rules, info: &SourceInfo) -> Result<Vec<Self>> {
        if rules.tags.is_none() && rules.heads.is_none() {
            // Not even a device: the other rules run without libtorch.
            return Ok(Vec::new());
        }
        let device = crate::device::select(crate::device::DeviceRequest::Auto, true)
            .map_err(|m| Error::input(path, format!("tags/heads: {m}")))?
            .name;
        let mut samplers: Vec<Self> = Vec::new();
        if let Some(rule) = &rules.tags {
            let mut sampler = Self::new(&rule.model, rule.every_n_frames, "tags", device, info);
            let labels = crate::tagging::LabelSet::with_templates(
                &rule.model,
                &rule.labels,
                &rule.templates,
                device,
            )
            .map_err(|m| Error::input(path, format!("tags: {m}")))?;
            sampler.dim = labels.dim;
            sampler.tags = Some(TagPeaks {
                peaks: vec![0.0; labels.labels.len()],
                labels,
            });
            samplers.push(sampler);
        }
        if let Some(rule) = &rules.heads {
            let shared = samplers
                .iter()
                .position(|s| s.model == rule.model && s.every_n_frames == rule.every_n_frames);
            let sampler = match shared {
                Some(i) => {
                    samplers[i].serves.push_str(", heads");
                    &mut samplers[i]
                }
                None => {
                    let mut sampler =
                        Self::new(&rule.model, rule.every_n_frames, "heads", device, info);
                    sampler.dim = crate::tagging::embedding_dim(&rule.model, device)
                        .map_err(|m| Error::input(path, format!("heads: {m}")))?;
                    samplers.push(sampler);
                    samplers.last_mut().expect("just pushed")
                }
            };
            sampler.heads = Some(HeadSum {
                rule: rule.clone(),
                sum: vec![0.0; sampler.dim],
            });
        }
        Ok(samplers)
    }

    fn new(
        model: &Path,
        every_n_frames: u32,
        serves: &str,
        device: crate::device::Device,
        info: &SourceInfo,
    ) -> Self {
        let short = info.width.min(info.height).max(1);
        let scale = (224.0 / f64::from(short)).min(1.0);
        let size = (
            ((f64::from(info.width) * scale).round() as u32).max(1),
            ((f64::from(info.height) * scale).round() as u32).max(1),
        );
        EmbeddingSampler {
            model: model.to_path_buf(),
            every_n_frames,
            serves: serves.into(),
            device,
            dim: 0,
            rgb: crate::media::RgbFrames::new(size.0, size.1, scaling::Flags::AREA),
            size,
            batch: Vec::new(),
            batch_frames: 0,
            sampled: 0,
            tags: None,
            heads: None,
        }
    }

    fn push(&mut self, path: &Path, index: u64, frame: &ff::frame::Video) -> Result<()> {
        if !index.is_multiple_of(u64::from(self.every_n_frames)) {
            return Ok(());
        }
        self.rgb
            .append(frame, None, &mut self.batch)
            .map_err(|e| Error::ffmpeg(path, "shrinking a frame", e))?;
        self.batch_frames += 1;
        if self.batch_frames == Self::BATCH {
            self.flush(path)?;
        }
        Ok(())
    }

    fn flush(&mut self, path: &Path) -> Result<()> {
        if self.batch_frames == 0 {
            return Ok(());
        }
        let failed = |m: String| Error::input(path, format!("{}: {m}", self.serves));
        let torch = crate::torch::Torch::get().map_err(failed)?;
        let request = framepipe_proto::ops::ClipEmbedFrames {
            on: framepipe_proto::ops::ModelOn {
                model: self.model.clone(),
                device: self.device,
            },
            frames: framepipe_proto::ops::Frames {
                n: self.batch_frames as u32,
                layout: crate::media::FrameLayout::rgb24(self.size.0, self.size.1),
                canvases: None,
            },
        };
        let dim = self.dim.max(1);
        let mut out = vec![0f32; self.batch_frames * dim];
        torch
            .clip_embed_frames(&request, &self.batch, &mut out)
            .map_err(|m| failed(m.to_string()))?;
        for row in out.chunks(dim) {
            if let Some(tags) = self.tags.as_mut() {
                tags.add(row);
            }
            if let Some(heads) = self.heads.as_mut() {
                heads.sum.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            }
        }
        self.sampled += self.batch_frames;
        self.batch.clear();
        self.batch_frames = 0;
        Ok(())
    }

    /// Flushes the last batch and hands each rule its findings (none when no frame was
    /// sampled).
    fn finish(mut self, path: &Path, scan: &mut Scan) -> Result<()> {
        self.flush(path)?;
        if self.sampled == 0 {
            return Ok(());
        }
        if let Some(tags) = self.tags {
            scan.tag_scores = Some(tags.labels.labels.into_iter().zip(tags.peaks).collect());
        }
        if let Some(heads) = self.heads {
            scan.heads = Some(heads.score(path, self.sampled)?);
        }
        Ok(())
    }
}

impl TagPeaks {
    fn add(&mut self, embedding: &[f32]) {
        for tag in self.labels.tags(embedding, self.peaks.len(), 0.0) {
            let i = self
                .labels
                .labels
                .iter()
                .position(|l| *l == tag.label)
                .expect("a known label");
            self.peaks[i] = self.peaks[i].max(tag.score);
        }
    }
}

impl HeadSum {
    fn score(self, path: &Path, frames: usize) -> Result<HeadScan> {
        let mean =
            crate::tagging::mean_embedding(std::iter::once(self.sum.as_slice())).expect("one row");
        let scores = self
            .rule
            .scores
            .iter()
            .map(|(name, check)| {
                let head = check.head.as_ref().expect("heads are read with the rules");
                head.score(&mean)
                    .map(|s| (name.clone(), s))
                    .map_err(|e| Error::input(path, format!("heads: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(HeadScan { frames, scores })
    }
}

/// A run of consecutive frames with some property, closed when a frame lacks it.
#[derive(Default)]
struct Runs {
    open: Option<f64>,
    runs: Vec<(f64, f64)>,
}

impl Runs {
    fn push(&mut self, inside: bool, time: f64) {
        match (inside, self.open) {
            (true, None) => self.open = Some(time),
            (false, Some(start)) => {
                self.runs.push((start, time));
                self.open = None;
            }
            _ => {}
        }
    }
    fn finish(mut self, end: f64) -> Vec<(f64, f64)> {
        if let Some(start) = self.open {
            self.runs.push((start, end));
        }
        self.runs
    }
}

/// (start, end) seconds of each stretch.
type Stretches = Vec<(f64, f64)>;

/// Black and frozen stretches, measured on each frame shrunk to a small gray picture (the tests
/// of `clips::looks`, which clips' blank and frozen scores use too).
struct GrayChecks {
    gray: SmallGray,
    previous: Vec<u8>,
    black_rule: Option<BlackRule>,
    /// What counts as black (also to keep black stretches out of frozen ones).
    black_test: BlackRule,
    frozen_rule: Option<FrozenRule>,
    black: Runs,
    frozen: Runs,
    /// Each frame's time, pHash and blankness (duplicate_of rule only).
    signature: Option<SignatureSeries>,
}

/// What signing a stretch of frames needs, frame by frame.
#[derive(Default)]
struct SignatureSeries {
    time: Vec<f64>,
    hashes: Vec<crate::clips::signature::PHash>,
    blank: Vec<bool>,
}

impl GrayChecks {
    fn new(rules: &Rules) -> Self {
        let black_rule = rules.black;
        GrayChecks {
            gray: SmallGray::new(looks::GRAY_W, looks::GRAY_H),
            previous: Vec::new(),
            black_rule,
            black_test: black_rule.unwrap_or(BlackRule {
                max_seconds: 0.0,
                luma_max: looks::BLACK_LUMA_MAX,
                picture_ratio: looks::BLACK_PICTURE_RATIO,
            }),
            frozen_rule: rules.frozen,
            black: Runs::default(),
            frozen: Runs::default(),
            signature: rules.duplicate_of.is_some().then(SignatureSeries::default),
        }
    }

    fn push(&mut self, path: &Path, frame: &ff::frame::Video, time: f64) -> Result<()> {
        if self.black_rule.is_none() && self.frozen_rule.is_none() && self.signature.is_none() {
            return Ok(());
        }
        let current = self
            .gray
            .convert(frame)
            .map_err(|e| Error::ffmpeg(path, "shrinking a frame", e))?;
        if let Some(series) = self.signature.as_mut() {
            series.time.push(time);
            series.hashes.push(crate::clips::signature::frame_hash(
                current,
                looks::GRAY_W as usize,
                looks::GRAY_H as usize,
            ));
            // The test clips' blank score uses: black by the looks' defaults, or flat.
            series.blank.push(
                looks::is_dark(current, looks::BLACK_LUMA_MAX, looks::BLACK_PICTURE_RATIO)
                    || looks::is_flat(current),
            );
        }
        let is_black = looks::is_dark(
            current,
            self.black_test.luma_max,
            self.black_test.picture_ratio,
        );
        if self.black_rule.is_some() {
            self.black.push(is_black, time);
        }
        if let Some(rule) = self.frozen_rule {
            if let Some(mean) = looks::mean_difference(&self.previous, current) {
                // Black stretches are the black rule's business, not frozen pictures.
                self.frozen
                    .push(mean <= rule.max_difference && !is_black, time);
            }
            self.previous.clear();
            self.previous.extend_from_slice(current);
        }
        Ok(())
    }

    /// The black and frozen stretches, the last ones closed at `end`.
    fn finish(&mut self, end: f64, frame_step: f64) -> (Stretches, Stretches) {
        // The frozen run's first frame is the one before the first near-identical comparison.
        let frozen = std::mem::take(&mut self.frozen)
            .finish(end)
            .into_iter()
            .map(|(s, e)| ((s - frame_step).max(0.0), e))
            .collect();
        (std::mem::take(&mut self.black).finish(end), frozen)
    }
}

impl SignatureSeries {
    /// The file cut at `cuts` (frame numbers) and every `max_seconds`, each piece signed and
    /// looked up in the rule's index.
    fn look_up(
        &self,
        rule: &super::rules::DuplicateOfRule,
        cuts: &[u64],
        end: f64,
    ) -> DuplicateScan {
        let lookup = rule
            .lookup
            .as_ref()
            .expect("the index is read when the rules load");
        let n = self.time.len();
        let mut bounds: Vec<usize> = vec![0];
        bounds.extend(cuts.iter().map(|&c| (c as usize).min(n)));
        bounds.push(n);
        bounds.dedup();
        let time_of = |i: usize| if i < n { self.time[i] } else { end };
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        for w in bounds.windows(2) {
            let (from, to) = (w[0], w[1]);
            let seconds = time_of(to) - time_of(from);
            let count = ((seconds / rule.max_seconds).ceil() as usize).max(1);
            for k in 0..count {
                pieces.push((
                    from + (to - from) * k / count,
                    from + (to - from) * (k + 1) / count,
                ));
            }
        }
        pieces.retain(|(a, b)| b > a);
        let signatures: Vec<Vec<crate::clips::signature::PHash>> = pieces
            .iter()
            .map(|&(a, b)| crate::clips::signature::sample(&self.hashes, &self.blank, a, b))
            .collect();
        let closest = lookup.closest(&signatures);
        let mut scan = DuplicateScan {
            pieces: pieces.len(),
            indexed: lookup.entries.len(),
            closest: 0.0,
            found: Vec::new(),
        };
        for (&(a, b), best) in pieces.iter().zip(closest) {
            let Some(best) = best else { continue };
            scan.closest = scan.closest.max(best.similarity);
            if best.similarity > rule.max_similarity {
                scan.found.push(DuplicateFound {
                    at: (time_of(a), time_of(b)),
                    similarity: best.similarity,
                    id: best.entry.id.clone(),
                    output: best.entry.output.clone(),
                    start: best.entry.start_time,
                    end: best.entry.end_time,
                });
            }
        }
        scan
    }
}

/// Content scenes: the scenes rule counts them, vae_anomalies takes each one's baseline.
struct SceneCuts {
    small: SmallFrames,
    detector: ContentDetector,
    size: (u32, u32),
    cuts: Vec<u64>,
}

impl SceneCuts {
    fn new(info: &SourceInfo) -> Self {
        let (w, h) = processing_size(info.width, info.height);
        SceneCuts {
            small: SmallFrames::new(w, h),
            detector: ContentDetector::new(ContentDetectorConfig::default())
                .expect("default settings are valid"),
            size: (w, h),
            cuts: Vec::new(),
        }
    }

    fn push(&mut self, path: &Path, index: u64, frame: &ff::frame::Video) -> Result<()> {
        let (bgr, stride) = self
            .small
            .convert(frame)
            .map_err(|e| Error::ffmpeg(path, "shrinking a frame", e))?;
        let (w, h) = (self.size.0 as usize, self.size.1 as usize);
        if let Some(cut) = self.detector.process_bgr(index, bgr, w, h, stride) {
            self.cuts.push(cut);
        }
        Ok(())
    }
}

/// Everything a decoded frame feeds, each given the frame in the order listed.
struct FrameChecks {
    frames: u64,
    last_time: f64,
    gray: GrayChecks,
    embedders: Vec<EmbeddingSampler>,
    reconstruction: Option<VaeSampler>,
    scenes: Option<SceneCuts>,
    text: Option<super::text::TextSampler>,
}

impl FrameChecks {
    fn new(path: &Path, info: &SourceInfo, rules: &Rules) -> Result<Self> {
        let gray = GrayChecks::new(rules);
        let scenes = (rules.scenes.is_some()
            || rules.vae_anomalies.is_some()
            || rules.duplicate_of.is_some())
        .then(|| SceneCuts::new(info));
        let reconstruction = match &rules.vae_anomalies {
            Some(rule) => Some(VaeSampler::new(path, rule, info)?),
            None => None,
        };
        let embedders = EmbeddingSampler::for_rules(path, rules, info)?;
        let text = match &rules.burned_in_text {
            Some(rule) => Some(super::text::TextSampler::new(path, rule)?),
            None => None,
        };
        Ok(FrameChecks {
            frames: 0,
            last_time: 0.0,
            gray,
            embedders,
            reconstruction,
            scenes,
            text,
        })
    }

    fn push(&mut self, path: &Path, frame: SourceFrame) -> Result<()> {
        self.frames += 1;
        self.last_time = frame.time;
        self.gray.push(path, &frame.frame, frame.time)?;
        for embedder in &mut self.embedders {
            embedder.push(path, frame.index, &frame.frame)?;
        }
        if let Some(vae) = self.reconstruction.as_mut() {
            vae.push(path, frame.index, frame.time, &frame.frame)?;
        }
        if let Some(scenes) = self.scenes.as_mut() {
            scenes.push(path, frame.index, &frame.frame)?;
        }
        if let Some(text) = self.text.as_mut() {
            text.push(path, frame.time, &frame.frame)?;
        }
        Ok(())
    }

    /// The findings, with `audio`'s and the decoder's. Audio finishes first, then the CLIP and
    /// VAE samplers flush their last batches: the order in which their errors are reported.
    fn finish(
        self,
        path: &Path,
        info: &SourceInfo,
        rules: &Rules,
        audio: Option<AudioAnalyzer>,
        counts: DecodeCounts,
    ) -> Result<Scan> {
        let end = if info.fps > 0.0 {
            self.last_time + 1.0 / info.fps
        } else {
            self.last_time
        };
        let frame_step = if info.fps > 0.0 { 1.0 / info.fps } else { 0.0 };
        let mut gray = self.gray;
        let (black, frozen) = gray.finish(end, frame_step);
        let scenes = self.scenes;
        let duplicates = match (&rules.duplicate_of, &gray.signature) {
            (Some(rule), Some(series)) => {
                let cuts = scenes.as_ref().map_or(&[][..], |s| s.cuts.as_slice());
                Some(series.look_up(rule, cuts, end))
            }
            _ => None,
        };
        let mut scan = Scan {
            frames: self.frames,
            decode_errors: counts.errors,
            damaged_frames: counts.damaged_frames,
            edit_list_discarded: counts.edit_list_discarded,
            black,
            frozen,
            scenes: rules.scenes.and(scenes.as_ref()).map(|s| s.cuts.len() + 1),
            audio: audio.map(|a| a.finish()).transpose()?,
            duplicates,
            ..Scan::default()
        };
        for embedder in self.embedders {
            embedder.finish(path, &mut scan)?;
        }
        scan.vae = match self.reconstruction {
            Some(v) => {
                let cuts = scenes.as_ref().map_or(&[][..], |s| s.cuts.as_slice());
                v.finish(path, cuts, info.fps)?
            }
            None => None,
        };
        scan.text = self.text.map(super::text::TextSampler::finish);
        Ok(scan)
    }
}

/// What the packet reads and the decoder counted besides the frames.
struct DecodeCounts {
    errors: u64,
    damaged_frames: u64,
    /// Video packets the container's edit list hides.
    edit_list_discarded: u64,
}

/// Reads every packet: the decoder's stream's to `decoder` (its frames to `sink`), stream
/// `audio_index`'s to `audio`, then drains the decoder. Read errors are counted and skipped;
/// after 64 the file counts as ended.
fn read_packets(
    input: &mut ff::format::context::Input,
    decoder: &mut VideoDecoder,
    audio_index: Option<usize>,
    mut audio: Option<&mut AudioAnalyzer>,
    sink: &mut dyn FnMut(SourceFrame) -> Result<()>,
) -> Result<DecodeCounts> {
    let video = decoder.stream_index();
    let mut packet = ff::Packet::empty();
    let (mut read_errors, mut discarded) = (0u64, 0u64);
    loop {
        match packet.read(input) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(_) => {
                read_errors += 1;
                if read_errors > 64 {
                    break;
                }
                continue;
            }
        }
        if Some(packet.stream()) == audio_index {
            if let Some(a) = audio.as_mut() {
                a.send_packet(&packet)?;
            }
            continue;
        }
        if packet.stream() != video {
            continue;
        }
        // SAFETY: reading a plain field of a packet we own.
        if unsafe { (*ff::packet::Ref::as_ptr(&packet)).flags } & ff::ffi::AV_PKT_FLAG_DISCARD != 0
        {
            discarded += 1;
        }
        decoder.send_packet(&packet, sink)?;
    }
    decoder.send_eof(sink)?;
    Ok(DecodeCounts {
        errors: read_errors + decoder.errors,
        damaged_frames: decoder.damaged_frames,
        edit_list_discarded: discarded,
    })
}

/// The audio analyzer when a silence or loudness rule asks and the file has audio, with its
/// stream's index.
fn open_audio(
    path: &Path,
    input: &ff::format::context::Input,
    info: &SourceInfo,
    rules: &Rules,
) -> Result<Option<(usize, AudioAnalyzer)>> {
    let wanted = rules.silence.is_some() || rules.loudness.is_some();
    let Some(index) = info.audio_stream_index.filter(|_| wanted) else {
        return Ok(None);
    };
    let analyzer = AudioAnalyzer::new(
        path,
        &input.stream(index).expect("probed audio stream"),
        rules.silence.map(|s| s.db_max),
        rules.loudness.is_some(),
    )?;
    Ok(Some((index, analyzer)))
}

pub fn scan(path: &Path, info: &SourceInfo, rules: &Rules) -> Result<Scan> {
    let mut input = ff::format::input(&path)
        .map_err(|e| Error::input(path, format!("cannot open as media: {e}")))?;
    let mut decoder = VideoDecoder::open(path, &input, info.video_stream_index, 0, 0)?;
    let mut checks = FrameChecks::new(path, info, rules)?;
    let (audio_index, mut audio) = open_audio(path, &input, info, rules)?.unzip();
    let counts = read_packets(
        &mut input,
        &mut decoder,
        audio_index,
        audio.as_mut(),
        &mut |frame| checks.push(path, frame),
    )?;
    checks.finish(path, info, rules, audio, counts)
}
