//! How `search` and `describe` answers are printed: aligned text for people, JSON for tools.
use std::fmt::Write;

use super::describe::Description;
use super::SearchReport;

fn span(start: f64, end: f64) -> String {
    format!("{:>17}", format!("{start:.2}-{end:.2} s"))
}

/// One block per query: rank, CLIP score (and the captions' score), video, scene and its time
/// span, the output video; the scene's captions under it.
pub fn search_text(report: &SearchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} rows from {} output(s), model {}",
        report.rows, report.row_kind, report.outputs, report.model
    );
    for s in &report.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.path, s.reason);
    }
    for result in &report.results {
        let _ = writeln!(out, "\nquery: {}", result.query);
        if result.hits.is_empty() {
            let _ = writeln!(out, "  (no results)");
        }
        for hit in &result.hits {
            let frame = match (hit.frame, hit.time) {
                (Some(f), Some(t)) => format!(" frame {f} at {t:.2} s"),
                _ => String::new(),
            };
            let lexical = match (hit.caption_score, hit.fused) {
                (Some(c), Some(f)) => format!("  captions {c:.3} fused {f:.4}"),
                (Some(c), None) => format!("  captions {c:.3}"),
                (None, Some(f)) => format!("  fused {f:.4}"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:>3}. {:>7.4}{lexical}  {}  scene {}{}  {}  {}",
                hit.rank,
                hit.score,
                hit.video,
                hit.scene,
                frame,
                span(hit.start_time, hit.end_time),
                hit.clip
                    .as_deref()
                    .or(hit.output_video.as_deref())
                    .unwrap_or(&hit.output)
            );
            if let Some(captions) = &hit.captions {
                let _ = writeln!(out, "       \"{captions}\"");
            }
        }
    }
    out
}

/// One block per scene: its time span and the labels with their scores.
pub fn describe_text(d: &Description) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({}), model {}", d.output, d.video, d.model);
    for scene in &d.scenes {
        let tags: Vec<String> = scene
            .tags
            .iter()
            .map(|t| format!("{} {:.3}", t.label, t.score))
            .collect();
        let _ = writeln!(
            out,
            "scene {:>3}  {}  {}",
            scene.scene,
            span(scene.start_time, scene.end_time),
            tags.join(", ")
        );
    }
    out
}
