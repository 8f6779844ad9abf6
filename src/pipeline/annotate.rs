//! The report of one input (`<stem>.json`), assembled from what the stages produced: the
//! source's facts, the output's, the scenes with their tags, the CLIP samples, the latents'
//! description, the per-stage times and every warning a user should read.
use std::collections::BTreeMap;

use crate::config::{PipelineConfig, ReconstructionConfig};
use crate::device::DeviceInfo;
use crate::media::probe::SourceInfo;
use crate::output::files::{EMBEDDINGS_FILE, RECONSTRUCTION_FILE, TRANSITIONS_FILE};
use crate::output::report::{
    LatentsReport, OutputInfo, ReconstructionReport, Report, StageStats, Stats, TransitionsReport,
    SCHEMA_VERSION,
};
use crate::output::tensors::posterior;
use crate::reconstruction::Findings;
use crate::tagging::LabelSet;
use framepipe_proto::ops::VaeFacts as VaeInfo;

use super::scenes::scenes_on_output;
use super::vae::LatentsOutput;
use super::PipelineOutput;

/// What the report takes from the run's session.
pub struct RunFacts<'a> {
    pub config: &'a PipelineConfig,
    pub device: &'a DeviceInfo,
    pub labels: Option<&'a LabelSet>,
    pub vae: Option<&'a VaeInfo>,
}

/// The report of one finished input.
pub fn annotate(
    session: &RunFacts,
    info: &SourceInfo,
    out: &PipelineOutput,
    video: Option<String>,
) -> Report {
    let cfg = session.config;
    let (frames, duration) = output_length(cfg, out);
    let cuts = out
        .scenes
        .as_ref()
        .map(|s| s.cuts.as_slice())
        .unwrap_or(&[]);
    let mut scenes = scenes_on_output(cuts, cfg.normalize.fps, frames, duration);
    let (samples, clip) = match (&out.tagging, session.labels, &cfg.clip) {
        (Some(clip), Some(labels), Some(clip_cfg)) => {
            let (samples, report) = tag(clip, labels, clip_cfg, &mut scenes);
            (Some(samples), Some(report))
        }
        _ => (None, None),
    };
    let findings = reconstruction_findings(cfg, out, &mut scenes);
    let mean_psnr = findings.as_ref().map(|(_, _, l)| {
        l.reconstruction.iter().map(|s| s.psnr).sum::<f64>() / l.reconstruction.len().max(1) as f64
    });
    Report {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: cfg.hash(),
        config: cfg.clone(),
        source: info.clone(),
        output: output_info(cfg, out, video, frames, duration),
        scenes,
        samples,
        clip,
        latents: latents_report(session, out, mean_psnr),
        transitions: transitions(cfg, out),
        clips: None,
        reconstruction: findings.as_ref().map(|(f, r, l)| ReconstructionReport {
            file: RECONSTRUCTION_FILE.into(),
            frames: l.reconstruction.len() as u64,
            mean_psnr: mean_psnr.unwrap_or(0.0),
            sensitivity: r.sensitivity,
            mad_floor_db: crate::reconstruction::MAD_FLOOR_DB,
            flagged_frames: f.flagged.len() as u64,
        }),
        anomalies: findings.map(|(f, _, _)| f.anomalies),
        stats: stats(session, out),
        warnings: warnings(cfg, info, out),
    }
}

/// The reconstruction anomalies of the run (`vae.reconstruction`), each scene given its
/// figures.
fn reconstruction_findings<'o>(
    cfg: &PipelineConfig,
    out: &'o PipelineOutput,
    scenes: &mut [crate::output::scene::Scene],
) -> Option<(Findings, ReconstructionConfig, &'o LatentsOutput)> {
    let (Some(l), Some(r)) = (
        &out.latents,
        cfg.vae.as_ref().and_then(|v| v.reconstruction),
    ) else {
        return None;
    };
    let starts: Vec<u64> = scenes.iter().map(|s| s.start_frame).collect();
    let f = crate::reconstruction::find(&l.reconstruction, &starts, r.sensitivity);
    for (scene, figures) in scenes.iter_mut().zip(&f.scenes) {
        scene.reconstruction = *figures;
    }
    Some((f, r, l))
}

/// The output video's description.
fn output_info(
    cfg: &PipelineConfig,
    out: &PipelineOutput,
    video: Option<String>,
    frames: u64,
    duration: f64,
) -> OutputInfo {
    let (width, height) = cfg.normalize.resolution.size();
    let audio_mode = match &out.encode {
        Some(e) if e.audio_transcoded_from.is_some() => "aac",
        Some(e) if e.audio_packets > 0 => "copy",
        _ => "none",
    };
    OutputInfo {
        video,
        width,
        height,
        content: out.normalize.as_ref().map(|n| n.content),
        frames,
        duration,
        fps: cfg.normalize.fps,
        has_audio: audio_mode != "none",
        audio: audio_mode.to_string(),
        chapters: out.encode.as_ref().map(|e| e.chapters).unwrap_or(0),
    }
}

/// The latents' description (their sizes on disk are filled in once the files are written).
fn latents_report(
    session: &RunFacts,
    out: &PipelineOutput,
    mean_psnr: Option<f64>,
) -> Option<LatentsReport> {
    let (Some(l), Some(c), Some(v)) = (&out.latents, &session.config.vae, session.vae) else {
        return None;
    };
    Some(LatentsReport {
        files: l.files.clone(),
        shape_per_frame: l.shape_per_frame.clone(),
        dtype: c.dtype,
        scaling_factor: v.scaling_factor,
        shift_factor: v.shift_factor,
        input_range: v.input_range,
        posterior: posterior(c),
        tiling: l.tiling,
        batch_size: l.batch_size,
        frames: l.frames,
        bytes: 0,
        ratio_to_raw_rgb: 0.0,
        ratio_to_video: None,
        mean_psnr,
    })
}

/// How the run went: frames, times per stage, decoder, device, damage.
fn stats(session: &RunFacts, out: &PipelineOutput) -> Stats {
    Stats {
        frames: out.decode.frames,
        wall_seconds: out.wall_seconds,
        fps: out.decode.frames as f64 / out.wall_seconds.max(1e-9),
        stages: stage_seconds(out),
        decoder: out.decode.decoder.to_string(),
        canvases_on: out.normalize.as_ref().and_then(|n| n.device),
        device: session.device.clone(),
        decode_errors: out.decode.errors,
        damaged_frames: out.decode.damaged_frames,
        frames_in_gpu_memory: out.decode.frames_in_gpu_memory,
    }
}

/// The output's frame count and duration: the encoder's, the decoder's, or the decoder's
/// duration at the configured constant rate.
fn output_length(cfg: &PipelineConfig, out: &PipelineOutput) -> (u64, f64) {
    match (&out.encode, cfg.normalize.fps) {
        (Some(e), _) => (e.frames, e.duration),
        (None, None) => (out.decode.frames, out.decode.duration),
        (None, Some(fps)) => {
            let n = (out.decode.duration * fps).round() as u64;
            (n, n as f64 / fps)
        }
    }
}

/// The tags of every sample and (the normalized mean of its samples) every scene, and the
/// report's description of the embeddings.
fn tag(
    clip: &super::tagging::TaggingOutput,
    labels: &LabelSet,
    clip_cfg: &crate::config::TaggingConfig,
    scenes: &mut [crate::output::scene::Scene],
) -> (
    Vec<crate::output::report::SampleReport>,
    crate::output::report::TaggingReport,
) {
    let samples = clip
        .samples
        .iter()
        .enumerate()
        .map(|(row, s)| crate::output::report::SampleReport {
            frame: s.frame,
            time: s.time,
            row,
            tags: labels.tags(&s.embedding, clip_cfg.top_k, clip_cfg.min_score),
        })
        .collect();
    for scene in scenes.iter_mut() {
        let inside = clip
            .samples
            .iter()
            .filter(|s| s.frame >= scene.start_frame && s.frame < scene.end_frame)
            .map(|s| s.embedding.as_slice());
        scene.tags = Some(
            crate::tagging::mean_embedding(inside)
                .map(|e| labels.tags(&e, clip_cfg.top_k, clip_cfg.min_score))
                .unwrap_or_default(),
        );
    }
    let report = crate::output::report::TaggingReport {
        model: clip_cfg.model.display().to_string(),
        labels: clip_cfg.labels.clone(),
        templates: clip_cfg.templates.clone(),
        model_hash: labels.model_hash.clone(),
        dim: clip.dim,
        samples: clip.samples.len(),
        embeddings: EMBEDDINGS_FILE.into(),
    };
    (samples, report)
}

/// Busy seconds of every stage that ran.
fn stage_seconds(out: &PipelineOutput) -> BTreeMap<String, StageStats> {
    let ran = [
        Some(("decode", out.decode.seconds)),
        out.normalize.as_ref().map(|n| ("normalize", n.seconds)),
        out.scenes.as_ref().map(|s| ("scenes", s.seconds)),
        out.encode.as_ref().map(|e| ("encode", e.seconds)),
        out.tagging.as_ref().map(|c| ("clip", c.seconds)),
        out.latents.as_ref().map(|l| ("vae", l.seconds)),
        out.thumbs.as_ref().map(|t| ("thumbs", t.seconds)),
    ];
    ran.into_iter()
        .flatten()
        .map(|(stage, seconds)| (stage.to_string(), StageStats { seconds }))
        .collect()
}

/// Everything about the run a user should read: damaged or re-timed input, a fallback from
/// NVDEC, automatic tiling, audio that was re-encoded or left out, frames the container lists
/// but nobody decoded.
fn warnings(cfg: &PipelineConfig, info: &SourceInfo, out: &PipelineOutput) -> Vec<String> {
    let mut warnings = Vec::new();
    if out.decode.errors > 0 {
        warnings.push(format!(
            "{} packet(s) or frame(s) could not be read or decoded; {} frames decoded",
            out.decode.errors, out.decode.frames
        ));
    }
    if let Some(reason) = &out.decode.hw_fallback {
        warnings.push(format!("decode.hwaccel cuda: {reason}; decoded on the CPU"));
    }
    let asked_tiling = cfg.vae.as_ref().is_some_and(|v| v.tiling);
    if out.latents.as_ref().is_some_and(|l| l.tiling) && !asked_tiling {
        warnings.push(
            "vae: not even one whole frame fit in memory, so batch_size \"auto\" encoded the \
             whole video in tiles (as vae.tiling does)"
                .to_string(),
        );
    }
    if out.decode.damaged_frames > 0 {
        warnings.push(format!(
            "{} frame(s) decoded from damaged data (concealed by the decoder)",
            out.decode.damaged_frames
        ));
    }
    if out.decode.repaired_timestamps > 0 {
        warnings.push(format!(
            "{} frame(s) had missing or non-increasing timestamps and were re-timed",
            out.decode.repaired_timestamps
        ));
    }
    if let Some(codec) = out
        .encode
        .as_ref()
        .and_then(|e| e.audio_transcoded_from.as_ref())
    {
        warnings.push(format!(
            "audio codec {codec} cannot be copied into MP4; re-encoded to AAC"
        ));
    }
    if let Some(encode) = &out.encode {
        if encode.undecided_frames > 0 {
            warnings.push(format!(
                "clips: {} frame(s) had to be encoded before the scene detector had decided \
                 whether a clip starts or ends there; clips with a boundary there have no file",
                encode.undecided_frames
            ));
        }
        if let Some(why) = &encode.audio_left_out {
            warnings.push(format!(
                "the source's audio cannot be decoded ({why}): the output has no audio"
            ));
        }
        if encode.audio_packets_dropped > 0 {
            warnings.push(format!(
                "{} damaged audio packet(s) left out of the output (they do not decode)",
                encode.audio_packets_dropped
            ));
        }
    }
    if let Some(short) = ended_early(info, &out.decode) {
        warnings.push(short);
    }
    let shown = info.frames.saturating_sub(out.decode.edit_list_discarded);
    if info.frames > 0 && shown != out.decode.frames {
        warnings.push(format!(
            "container lists {} frames ({} hidden by its edit list), {} were decoded",
            info.frames, out.decode.edit_list_discarded, out.decode.frames
        ));
    }
    warnings
}

/// Decoding that stopped well before the duration the file declares (a damaged or truncated
/// file whose demuxer gave up without an error): how many frames came out, and how long the
/// video should have been. Tolerant of the small differences edit lists, VFR timing and an
/// audio track that outlasts the video make: half a second, or a tenth of the duration.
fn ended_early(info: &SourceInfo, decode: &super::decode::DecodeStats) -> Option<String> {
    let expected = info.duration;
    if !(expected.is_finite() && expected > 0.0) {
        return None;
    }
    let slack = (0.1 * expected).max(0.5);
    (decode.duration + slack < expected).then(|| {
        let about = if info.fps > 0.0 {
            format!(", about {:.0} expected", expected * info.fps)
        } else {
            String::new()
        };
        format!(
            "decoding ended at {:.2} s of the {:.2} s the file declares: {} frame(s) decoded{about} \
             (damaged or truncated file?)",
            decode.duration, expected, decode.frames
        )
    })
}

/// Where TransNetV2's probabilities went (`transnetv2` runs only).
fn transitions(cfg: &PipelineConfig, out: &PipelineOutput) -> Option<TransitionsReport> {
    let p = out.scenes.as_ref()?.probabilities.as_ref()?;
    let scenes = cfg.scenes.as_ref()?;
    Some(TransitionsReport {
        file: TRANSITIONS_FILE.to_string(),
        model: scenes.model_dir()?.display().to_string(),
        precision: Some(p.precision),
        frames: p.single.len() as u64,
        transition_frames: p
            .single
            .iter()
            .filter(|&&v| f64::from(v) > scenes.threshold)
            .count() as u64,
    })
}
