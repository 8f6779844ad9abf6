//! The report page's HTML: one file, inline CSS, no script, no network (no fonts, styles or
//! scripts from elsewhere), so it opens offline in any browser. Every text taken from a report
//! (names, paths, labels, warnings) goes through [`text`]; every link is a relative path made
//! by [`href`], its segments percent-encoded.
//!
//! Class names are stable (the tests and anyone styling the page rely on them): `index-row`,
//! `output`, `timeline`, `scene`, `thumb` (`thumb-first`/`-middle`/`-last`), `tags`, `tag`,
//! `tag-label`, `tag-score`, `transition-in`, `play`, `clip`, `clip-item` (`dropped` for a clip
//! the filters dropped), `clip-scores`, `clip-dropped`, `clip-caption` (its model in the title),
//! `clip-caption-error`, `warning`, `note`, `skipped-item`.
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{Entry, Page};
use crate::output::clip_record::ClipRecord;
use crate::output::scene::Scene;

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#1b1f24;background:#fafbfc}
h1{font-size:1.6em;margin:0 0 .3em}h2{font-size:1.3em;margin:0 0 .4em}
a{color:#0a58ca}code{font-size:.92em}
table{border-collapse:collapse}
th,td{padding:4px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #e1e4e8}
th{background:#f0f2f5}
.index td.num,.index th.num{text-align:right}
section.output{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1em;margin:1.5em 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:.5em 0}
dl.facts dt{color:#57606a}dl.facts dd{margin:0}
.warning{color:#9a6700}.note{color:#a40e26}
svg.timeline{width:100%;height:56px;display:block;margin:.6em 0;background:#f6f8fa;border:1px solid #e1e4e8}
svg.timeline .sc0{fill:#cfe2ff}svg.timeline .sc1{fill:#e2d9f3}
svg.timeline .cut{stroke:#1b1f24;stroke-width:1}
svg.timeline .prob{fill:none;stroke:#d63384;stroke-width:1.2}
svg.timeline .threshold{stroke:#d63384;stroke-dasharray:4 3;stroke-width:.6}
td.thumbs{white-space:nowrap}
img.thumb{width:192px;height:auto;margin-right:3px;border:1px solid #d0d7de;background:#000}
.no-thumbs{color:#57606a;font-style:italic}
.tag{display:inline-block;background:#eef1f4;border-radius:10px;padding:0 8px;margin:1px}
.tag-score{color:#57606a;font-size:.9em}
.transition-in{display:inline-block;background:#fff3cd;border-radius:4px;padding:0 4px;font-size:.85em}
.clip{display:block}
.clip-item{margin:0 0 4px}.clip-scores,.clip-dropped{display:block;font-size:.85em}
.clip-scores{color:#57606a}.clip-dropped{color:#a40e26}
.clip-caption{display:block;font-style:italic;margin:2px 0}.clip-caption-error{display:block;font-size:.85em;color:#9a6700}
.clip-item.dropped{opacity:.55;background:#f0f2f5}.clip-item.dropped .clip{text-decoration:line-through}
"#;

/// The whole page.
pub fn render(page: &Page) -> String {
    let mut h = String::with_capacity(4096 + 2048 * scene_count(page));
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>framepipe report</title>\n<style>");
    h.push_str(STYLE);
    h.push_str("</style>\n</head>\n<body>\n<h1>framepipe report</h1>\n");
    let clips: usize = page
        .entries
        .iter()
        .map(|e| clip_count(e).unwrap_or(0))
        .sum();
    let _ = writeln!(
        h,
        "<p class=\"summary\">{} outputs, {} scenes, {} clips{}</p>",
        page.entries.len(),
        scene_count(page),
        clips,
        if page.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", page.skipped.len())
        }
    );
    index(&mut h, page);
    if !page.skipped.is_empty() {
        h.push_str("<section class=\"skipped\">\n<h2>Skipped</h2>\n<ul>\n");
        for s in &page.skipped {
            let _ = writeln!(
                h,
                "<li class=\"skipped-item\"><code>{}</code>: {}</li>",
                text(&s.dir.display().to_string()),
                text(&s.reason)
            );
        }
        h.push_str("</ul>\n</section>\n");
    }
    for (i, entry) in page.entries.iter().enumerate() {
        output(&mut h, i, entry);
    }
    h.push_str("</body>\n</html>\n");
    h
}

fn scene_count(page: &Page) -> usize {
    page.entries.iter().map(|e| e.report.scenes.len()).sum()
}

/// The kept clips (those no filter dropped).
fn clip_count(entry: &Entry) -> Option<usize> {
    entry
        .clips
        .as_ref()
        .map(|clips| clips.iter().filter(|c| c.kept()).count())
        .or_else(|| entry.report.clips.as_ref().map(|c| c.count))
}

fn index(h: &mut String, page: &Page) {
    h.push_str("<table class=\"index\">\n<thead><tr><th>output</th><th class=\"num\">scenes</th><th class=\"num\">clips</th><th class=\"num\">warnings</th><th>notes</th></tr></thead>\n<tbody>\n");
    for (i, e) in page.entries.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr class=\"index-row\"><td><a href=\"#out-{i}\">{}</a></td><td class=\"num n-scenes\">{}</td><td class=\"num n-clips\">{}</td><td class=\"num n-warnings\">{}</td><td class=\"note\">{}</td></tr>",
            text(&e.name),
            e.report.scenes.len(),
            clip_count(e).map_or("–".to_string(), |n| n.to_string()),
            e.report.warnings.len(),
            text(&e.notes.join("; ")),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

fn output(h: &mut String, i: usize, e: &Entry) {
    let r = &e.report;
    let _ = writeln!(
        h,
        "<section class=\"output\" id=\"out-{i}\">\n<h2>{}</h2>",
        text(&e.name)
    );
    h.push_str("<dl class=\"facts\">\n");
    let s = &r.source;
    fact(
        h,
        "folder",
        &format!("<code>{}</code>", text(&e.dir.display().to_string())),
    );
    fact(h, "source", &format!("<code>{}</code>", text(&s.path)));
    fact(
        h,
        "source video",
        &text(&format!(
            "{} {}x{} (display {}x{}), {:.3} fps, {}",
            s.codec,
            s.width,
            s.height,
            s.display_width,
            s.display_height,
            s.fps,
            duration(s.duration)
        )),
    );
    let o = &r.output;
    let file_size = o
        .video
        .as_ref()
        .and_then(|v| std::fs::metadata(e.dir.join(v)).ok())
        .map(|m| format!(", {:.1} MB", m.len() as f64 / 1e6))
        .unwrap_or_default();
    fact(
        h,
        "output",
        &text(&format!(
            "{}x{}, {} frames, {}, audio {}{}",
            o.width,
            o.height,
            o.frames,
            duration(o.duration),
            o.audio,
            file_size
        )),
    );
    fact(
        h,
        "wall time",
        &text(&format!(
            "{:.2} s ({:.1} frames/s)",
            r.stats.wall_seconds, r.stats.fps
        )),
    );
    if let Some(clip) = &r.clip {
        fact(
            h,
            "CLIP",
            &text(&format!("{} ({} labels)", clip.model, clip.labels.len())),
        );
    }
    h.push_str("</dl>\n");
    if !r.warnings.is_empty() {
        h.push_str("<ul class=\"warnings\">\n");
        for w in &r.warnings {
            let _ = writeln!(h, "<li class=\"warning\">{}</li>", text(w));
        }
        h.push_str("</ul>\n");
    }
    for n in &e.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", text(n));
    }
    timeline(h, e);
    scenes(h, i, e);
    h.push_str("</section>\n");
}

fn fact(h: &mut String, name: &str, html: &str) {
    let _ = writeln!(h, "<dt>{name}</dt><dd>{html}</dd>");
}

/// Scenes as bands along the output's frames, cuts as lines, and TransNetV2's single-frame
/// probability (when stored) as a polyline, at most [`MAX_POINTS`] points (the highest of each
/// stretch, so no peak is lost).
fn timeline(h: &mut String, e: &Entry) {
    const W: f64 = 1000.0;
    const H: f64 = 40.0;
    const MAX_POINTS: usize = 2000;
    let r = &e.report;
    let frames = r.output.frames.max(1) as f64;
    let _ = writeln!(
        h,
        "<svg class=\"timeline\" viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"scenes along the video\">"
    );
    for (k, s) in r.scenes.iter().enumerate() {
        let x0 = s.start_frame as f64 / frames * W;
        let x1 = s.end_frame as f64 / frames * W;
        let _ = writeln!(
            h,
            "<rect class=\"sc{}\" x=\"{x0:.2}\" y=\"0\" width=\"{:.2}\" height=\"{H}\"><title>scene {} ({} – {})</title></rect>",
            k % 2,
            (x1 - x0).max(0.0),
            s.index,
            clock(s.start_time),
            clock(s.end_time)
        );
        if k > 0 {
            let _ = writeln!(
                h,
                "<line class=\"cut\" x1=\"{x0:.2}\" y1=\"0\" x2=\"{x0:.2}\" y2=\"{H}\"/>"
            );
        }
    }
    if let Some(points) = &e.transitions {
        let source_frames = r.stats.frames.max(1) as f64;
        let step = points.len().div_ceil(MAX_POINTS).max(1);
        let mut line = String::new();
        for chunk in points.chunks(step) {
            let (i, p) = chunk
                .iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("chunks are not empty");
            let x = (i as f64 + 0.5) / source_frames * W;
            let y = H - f64::from(p.clamp(0.0, 1.0)) * (H - 2.0);
            let _ = write!(line, "{x:.1},{y:.1} ");
        }
        // The probabilities are TransNetV2's, so the scenes' threshold is a probability too.
        if let Some(threshold) = r.config.scenes.as_ref().map(|s| s.threshold) {
            let y = H - threshold.clamp(0.0, 1.0) * (H - 2.0);
            let _ = writeln!(
                h,
                "<line class=\"threshold\" x1=\"0\" y1=\"{y:.1}\" x2=\"{W}\" y2=\"{y:.1}\"/>"
            );
        }
        let _ = writeln!(
            h,
            "<polyline class=\"prob\" points=\"{}\"><title>TransNetV2 transition probability</title></polyline>",
            line.trim_end()
        );
    }
    h.push_str("</svg>\n");
}

fn scenes(h: &mut String, i: usize, e: &Entry) {
    let r = &e.report;
    let tagged = r.clip.is_some();
    let video = r
        .output
        .video
        .as_deref()
        .filter(|v| e.dir.join(v).is_file());
    let clips_by_scene = clips_by_scene(e);
    scenes_head(h, tagged, e.clips.is_some());
    for (k, s) in r.scenes.iter().enumerate() {
        scene_index_cell(h, i, s);
        thumbs_cell(h, e.thumbnails.get(k).and_then(Option::as_ref), s);
        time_cell(h, s);
        if tagged {
            tags_cell(h, s);
        }
        play_cell(h, e, video, s);
        if e.clips.is_some() {
            clips_cell(h, e, &clips_by_scene[k]);
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

/// The output's clips per scene, in file order (a clip naming no scene of the report is left
/// out).
fn clips_by_scene(e: &Entry) -> Vec<Vec<&ClipRecord>> {
    let mut clips_by_scene: Vec<Vec<&ClipRecord>> = vec![Vec::new(); e.report.scenes.len()];
    if let Some(clips) = &e.clips {
        for c in clips {
            if let Some(list) = clips_by_scene.get_mut(c.scene) {
                list.push(c);
            }
        }
    }
    clips_by_scene
}

/// The scene table's opening and header row; the tags and clips columns only where the output
/// has them.
fn scenes_head(h: &mut String, tagged: bool, clips: bool) {
    h.push_str("<table class=\"scenes\">\n<thead><tr><th>scene</th><th>first · middle · last</th><th>time</th>");
    if tagged {
        h.push_str("<th class=\"tags-head\">tags</th>");
    }
    h.push_str("<th>play</th>");
    if clips {
        h.push_str("<th>clips</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
}

/// Opens scene `s`'s row (anchored for links to it) with its index cell.
fn scene_index_cell(h: &mut String, i: usize, s: &Scene) {
    let _ = write!(
        h,
        "<tr class=\"scene\" id=\"out-{i}-scene-{}\"><td class=\"scene-index\">{}",
        s.index, s.index
    );
    if let Some(t) = &s.transition_in {
        let _ = write!(
            h,
            " <span class=\"transition-in\" title=\"gradual transition in: frames {}–{}\">transition in</span>",
            t.start_frame, t.end_frame
        );
    }
    h.push_str("</td>");
}

fn thumbs_cell(h: &mut String, files: Option<&[PathBuf; 3]>, s: &Scene) {
    match files {
        Some(files) => {
            h.push_str("<td class=\"thumbs\">");
            for (file, which) in files.iter().zip(["first", "middle", "last"]) {
                let _ = write!(
                    h,
                    "<img class=\"thumb thumb-{which}\" src=\"{}\" alt=\"scene {} {which} frame\" loading=\"lazy\">",
                    href(file),
                    s.index
                );
            }
            h.push_str("</td>");
        }
        None => h.push_str("<td class=\"thumbs no-thumbs\">no thumbnails</td>"),
    }
}

/// The scene's times and its inclusive frame range (a scene is never shown as ending before it
/// starts).
fn time_cell(h: &mut String, s: &Scene) {
    let _ = write!(
        h,
        "<td class=\"time\">{} – {}<br><small>frames {}–{}</small></td>",
        clock(s.start_time),
        clock(s.end_time),
        s.start_frame,
        s.end_frame.saturating_sub(1).max(s.start_frame)
    );
}

fn tags_cell(h: &mut String, s: &Scene) {
    h.push_str("<td class=\"tags\">");
    for t in s.tags.iter().flatten() {
        let _ = write!(
            h,
            "<span class=\"tag\"><span class=\"tag-label\">{}</span> <span class=\"tag-score\">{:.2}</span></span>",
            text(&t.label),
            t.score
        );
    }
    h.push_str("</td>");
}

/// A link playing the scene's span of the output video, when the video is there.
fn play_cell(h: &mut String, e: &Entry, video: Option<&str>, s: &Scene) {
    match video {
        Some(v) => {
            let _ = write!(
                h,
                "<td><a class=\"play\" href=\"{}#t={:.3},{:.3}\">play</a></td>",
                href(&e.link.join(v)),
                s.start_time,
                s.end_time
            );
        }
        None => h.push_str("<td class=\"no-video\">–</td>"),
    }
}

/// The scene's clips: each a link to its file (or its id where no file was written), its
/// scores, and for a clip the filters dropped, greyed and struck through, the reasons.
fn clips_cell(h: &mut String, e: &Entry, clips: &[&ClipRecord]) {
    h.push_str("<td class=\"clips\">");
    for c in clips {
        let _ = write!(
            h,
            "<div class=\"clip-item{}\">",
            if c.kept() { "" } else { " dropped" }
        );
        match &c.file {
            Some(file) => {
                let _ = write!(
                    h,
                    "<a class=\"clip\" href=\"{}\">{}</a>",
                    href(&e.link.join(file)),
                    text(&c.id)
                );
            }
            None => {
                let _ = write!(h, "<span class=\"clip no-file\">{}</span>", text(&c.id));
            }
        }
        let _ = write!(
            h,
            "<span class=\"clip-scores\">{}</span>",
            text(&clip_scores(c))
        );
        if !c.kept() {
            let _ = write!(
                h,
                "<span class=\"clip-dropped\">out: {}</span>",
                text(&c.dropped.join("; "))
            );
        }
        caption_line(h, c);
        h.push_str("</div>");
    }
    h.push_str("</td>");
}

/// The clip's caption and the model that wrote it, or why it has none.
fn caption_line(h: &mut String, c: &ClipRecord) {
    if let Some(caption) = &c.caption {
        let _ = write!(
            h,
            "<q class=\"clip-caption\" title=\"{}\">{}</q>",
            text(c.caption_model.as_deref().unwrap_or("")),
            text(caption)
        );
    } else if let Some(error) = &c.caption_error {
        let _ = write!(
            h,
            "<span class=\"clip-caption-error\">no caption: {}</span>",
            text(error)
        );
    }
}

/// A clip's scores in one line: motion, blank and frozen (when recorded) and each head's.
fn clip_scores(c: &ClipRecord) -> String {
    let mut parts = vec![format!("motion {:.4}", c.motion)];
    if let Some(b) = c.blank {
        parts.push(format!("blank {b:.2}"));
    }
    if let Some(f) = c.frozen {
        parts.push(format!("frozen {f:.2}"));
    }
    for (name, score) in &c.heads {
        parts.push(format!("{name} {score:.3}"));
    }
    parts.join(" · ")
}

/// `m:ss.mmm` (or `h:mm:ss.mmm`).
fn clock(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{ms:03}")
    } else {
        format!("{m}:{s:02}.{ms:03}")
    }
}

fn duration(seconds: f64) -> String {
    format!("{seconds:.2} s")
}

/// Text for HTML content and attribute values.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative path as a URL path: `/`-separated, each segment's bytes outside the unreserved
/// set percent-encoded (so `#`, `?`, `%`, spaces and non-ASCII names survive).
pub fn href(path: &Path) -> String {
    let mut out = String::new();
    for (n, part) in path.iter().enumerate() {
        if n > 0 {
            out.push('/');
        }
        for &b in part.as_encoded_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_links_are_escaped() {
        assert_eq!(
            text(r#"<b a="1">&'x'"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;x&#39;"
        );
        assert_eq!(
            href(Path::new("../out dir/a#1/b?.mp4")),
            "../out%20dir/a%231/b%3F.mp4"
        );
        assert_eq!(clock(62.5), "1:02.500");
        assert_eq!(clock(3723.0), "1:02:03.000");
    }
}
