//! Zero-shot tags from CLIP embeddings: label text embeddings (computed once per run, the mean
//! over the prompt templates as CLIP's zero-shot evaluation does), softmax over the labels of
//! `exp(logit_scale) * cos`, top-k with a score floor, and scene embeddings as the normalized mean
//! of their samples' embeddings.

use crate::config::TaggingConfig;
use crate::output::scene::Tag;
use crate::torch::Torch;
use framepipe_proto::ops::{ClipTexts, ModelOn};

/// The labels of a run and their text embeddings.
#[derive(Debug, Clone)]
pub struct LabelSet {
    pub labels: Vec<String>,
    embeddings: Vec<Vec<f32>>,
    scale: f64,
    pub dim: usize,
    /// The model's fingerprint ([`crate::model_id::fingerprint`]), recorded with the embeddings.
    pub model_hash: String,
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl LabelSet {
    /// Embeds every label x template on `device` (loads the model, so a bad model folder fails
    /// here, before any input is decoded).
    pub fn load(cfg: &TaggingConfig, device: crate::device::Device) -> Result<LabelSet, String> {
        Self::with_templates(&cfg.model, &cfg.labels, &cfg.templates, device)
    }

    /// Embeds `labels` x `templates` with the CLIP model in `model` (`describe` ranks labels
    /// other than the run's with it).
    pub fn with_templates(
        model: &std::path::Path,
        labels: &[String],
        templates: &[String],
        device: crate::device::Device,
    ) -> Result<LabelSet, String> {
        let model_hash =
            crate::model_id::fingerprint(model).map_err(|e| format!("{}: {e}", model.display()))?;
        let texts: Vec<String> = labels
            .iter()
            .flat_map(|l| templates.iter().map(move |t| t.replacen("{}", l, 1)))
            .collect();
        let reply = Torch::get()?.call(&ClipTexts {
            on: ModelOn {
                model: model.to_path_buf(),
                device,
            },
            texts,
        })?;
        let rows = reply.embeddings;
        let per_label = templates.len().max(1);
        let embeddings = rows
            .chunks(per_label)
            .map(|group| {
                let mut mean = vec![0f32; group[0].len()];
                for row in group {
                    mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
                }
                normalize(&mut mean);
                mean
            })
            .collect();
        Ok(LabelSet {
            labels: labels.to_vec(),
            embeddings,
            scale: reply.logit_scale_exp,
            dim: reply.dim as usize,
            model_hash,
        })
    }

    /// Softmax over all labels of one (normalized) image embedding; the `top_k` best scoring at
    /// least `min_score`, best first.
    pub fn tags(&self, embedding: &[f32], top_k: usize, min_score: f64) -> Vec<Tag> {
        let logits: Vec<f64> = self
            .embeddings
            .iter()
            .map(|t| {
                self.scale
                    * t.iter()
                        .zip(embedding)
                        .map(|(a, b)| f64::from(a * b))
                        .sum::<f64>()
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        let mut tags: Vec<Tag> = self
            .labels
            .iter()
            .zip(&exps)
            .map(|(l, e)| Tag {
                label: l.clone(),
                score: e / total,
            })
            .collect();
        tags.sort_by(|a, b| b.score.total_cmp(&a.score));
        tags.into_iter()
            .filter(|t| t.score >= min_score)
            .take(top_k)
            .collect()
    }
}

/// How many values the CLIP model in `model` puts in an embedding (loads the model on
/// `device`, so a bad folder fails here).
pub fn embedding_dim(
    model: &std::path::Path,
    device: crate::device::Device,
) -> Result<usize, String> {
    let reply = Torch::get()?.call(&ClipTexts {
        on: ModelOn {
            model: model.to_path_buf(),
            device,
        },
        texts: Vec::new(),
    })?;
    Ok(reply.dim as usize)
}

/// The normalized mean of normalized embeddings (a scene's embedding from its samples).
pub fn mean_embedding<'a>(rows: impl Iterator<Item = &'a [f32]>) -> Option<Vec<f32>> {
    let mut mean: Option<Vec<f32>> = None;
    for row in rows {
        let m = mean.get_or_insert_with(|| vec![0.0; row.len()]);
        m.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    mean.map(|mut m| {
        normalize(&mut m);
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_top_k_and_floor() {
        let set = LabelSet {
            labels: vec!["a".into(), "b".into(), "c".into()],
            embeddings: vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, 0.0]],
            scale: 10.0,
            dim: 2,
            model_hash: String::new(),
        };
        let tags = set.tags(&[1.0, 0.0], 2, 0.0);
        assert_eq!(
            tags.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let total: f64 = set.tags(&[1.0, 0.0], 3, 0.0).iter().map(|t| t.score).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(set.tags(&[1.0, 0.0], 3, 0.5).len(), 1);
        let m =
            mean_embedding([[1.0f32, 0.0].as_slice(), [0.0, 1.0].as_slice()].into_iter()).unwrap();
        assert!((m[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }
}
