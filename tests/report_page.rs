//! `framepipe report`: the HTML page of finished outputs, judged by a real browser (Debian's
//! `chromium`, headless, networking disabled): the DOM it builds has a row and three thumbnails
//! per scene of every output, tags only for the CLIP output, links and images that resolve to
//! files next to the page or to the outputs, a screenshot that is not blank, and no console
//! error. Bad inputs: no finished output is exit 1; an output whose video is gone is listed with
//! the reason while the others are still reported.
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::browser::browse;
use common::*;

fn clip_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

const LABELS: [&str; 3] = ["a cat", "a street", "color bars"];

/// Content scenes + x264 ultrafast, optionally with CLIP tags and clips.
fn plain_pipeline(dir: &Path) -> PathBuf {
    pipeline(
        dir,
        "plain.json",
        r#"{"scenes": {"detector": "content"}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#,
    )
}

fn tag_pipeline(dir: &Path) -> PathBuf {
    let clip = format!(
        r#"{{"model": {:?}, "labels": {:?}, "sample": {{"every_n_frames": 10}}, "top_k": 2, "batch_size": 4}}"#,
        clip_fixture().display().to_string(),
        LABELS
    );
    pipeline(
        dir,
        "tag.json",
        &format!(
            r#"{{"scenes": {{"detector": "content"}}, "clip": {clip}, "clips": {{"min_seconds": 0.5, "trim_seconds": 0.0}}, "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#
        ),
    )
}

fn run_ok(cfg: &Path, out: &Path, inputs: &[&Path], extra: &[&str]) {
    let o = framepipe()
        .args(["-q", "run", "--pipeline"])
        .arg(cfg)
        .arg("-o")
        .arg(out)
        .args(extra)
        .args(inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

fn report_cmd(dirs: &[&Path], page: &Path) -> std::process::Output {
    framepipe()
        .arg("report")
        .args(dirs)
        .arg("-o")
        .arg(page)
        .output()
        .unwrap()
}

/// The values of `attr="..."` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// A relative URL path (percent-encoded, maybe with a `#fragment`) as a file path under `base`.
fn resolve(base: &Path, url: &str) -> PathBuf {
    let path = url.split('#').next().unwrap();
    let bytes = path.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            decoded.push(u8::from_str_radix(&path[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    base.join(String::from_utf8(decoded).unwrap())
}

/// Each output's `<section class="output">…</section>` of a page, by its heading.
fn sections(html: &str) -> Vec<(String, String)> {
    html.split("<section class=\"output\"")
        .skip(1)
        .map(|s| {
            let s = &s[..s.find("</section>").unwrap()];
            let h2 = &s[s.find("<h2>").unwrap() + 4..s.find("</h2>").unwrap()];
            (h2.to_string(), s.to_string())
        })
        .collect()
}

#[test]
fn page_shows_every_scene_of_every_output_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tagged = d.join("tagged.mp4");
    let plain = d.join("plain.mp4");
    make_cut_clip(
        &tagged,
        "320x240",
        &[("testsrc2", 30), ("smptebars", 30), ("mandelbrot", 30)],
        false,
        &[],
    );
    make_cut_clip(
        &plain,
        "320x240",
        &[("smptebars", 30), ("testsrc2", 30)],
        true,
        &[],
    );
    let out = d.join("out");
    run_ok(&tag_pipeline(d), &out, &[&tagged], &[]);
    run_ok(&plain_pipeline(d), &out, &[&plain], &[]);
    let tagged_report = typed_report(&out, "tagged");
    let plain_report = typed_report(&out, "plain");
    assert_eq!(tagged_report.scenes.len(), 3);
    assert_eq!(plain_report.scenes.len(), 2);

    // The page's folder is elsewhere: its links must climb out of it.
    let page = d.join("pages/today");
    let o = report_cmd(&[&out], &page);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = page.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();

    // Nothing from the network: no absolute or protocol-relative link or source.
    for attr in ["src", "href"] {
        for v in attr_values(&html, attr) {
            assert!(
                !v.starts_with("http:") && !v.starts_with("https:") && !v.starts_with("//"),
                "{attr}={v:?} reaches the network"
            );
        }
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"), "no script needed");
    // Every image is a thumbnail the run saved in its output folder (listed in its report),
    // none was decoded for the page; every link leads to a file of an output.
    let srcs = attr_values(&html, "src");
    assert_eq!(srcs.len(), 3 * 5, "three thumbnails per scene");
    let listed: Vec<String> = [("tagged", &tagged_report), ("plain", &plain_report)]
        .iter()
        .flat_map(|(name, r)| {
            r.scenes.iter().flat_map(move |s| {
                s.thumbnails
                    .clone()
                    .unwrap()
                    .files
                    .map(|f| format!("{name}/{f}"))
            })
        })
        .collect();
    let out_abs = std::fs::canonicalize(&out).unwrap();
    for src in &srcs {
        let file = std::fs::canonicalize(resolve(&page, src)).unwrap();
        let rel = file
            .strip_prefix(&out_abs)
            .unwrap_or_else(|_| panic!("{src}: not in an output"));
        assert!(
            listed.contains(&rel.display().to_string()),
            "{src}: not listed in its report"
        );
        let img = image::open(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        assert_eq!(img.width(), 192, "{file:?}");
    }
    assert_eq!(
        std::fs::read_dir(page.join("thumbs")).unwrap().count(),
        0,
        "nothing decoded for the page"
    );
    let hrefs: Vec<String> = attr_values(&html, "href")
        .into_iter()
        .filter(|h| !h.starts_with('#'))
        .collect();
    assert!(
        hrefs.iter().any(|h| h.ends_with(".mp4#t=0.000,1.200")),
        "{hrefs:?}"
    );
    for h in &hrefs {
        let file = resolve(&page, h);
        assert!(file.is_file(), "{h} → {file:?} is not a file");
    }
    // One play link per scene, into the output's whole video; clip links for the clips output.
    let plays: Vec<&String> = hrefs.iter().filter(|h| h.contains("#t=")).collect();
    assert_eq!(plays.len(), 5);
    let clips = std::fs::read_to_string(out.join("tagged/clips.jsonl")).unwrap();
    let clip_files: HashSet<String> = clips
        .lines()
        .map(|l| {
            serde_json::from_str::<framepipe::output::clip_record::ClipRecord>(l)
                .unwrap()
                .file
                .unwrap()
        })
        .collect();
    assert!(!clip_files.is_empty());
    for f in &clip_files {
        assert!(
            hrefs.iter().any(|h| h.ends_with(f.as_str())),
            "no link to {f}"
        );
    }

    // The first scene's first thumbnail is the output's frame 0 (testsrc2: mostly saturated
    // bars), its last thumbnail of the mandelbrot scene is not a bars picture: by the pixels.
    let thumb = |scene: usize, which: usize| -> image::RgbImage {
        let name = format!("s{scene:05}-{which}.jpg");
        let src = srcs
            .iter()
            .find(|s| s.contains("tagged") && s.ends_with(&name))
            .unwrap();
        image::open(resolve(&page, src)).unwrap().to_rgb8()
    };
    let ffmpeg_frame = |frame: u32| -> Vec<u8> {
        let video = out.join("tagged/tagged.mp4");
        let raw = d.join(format!("frame{frame}.rgb"));
        ffmpeg(&[
            "-i",
            video.to_str().unwrap(),
            "-vf",
            &format!("select=eq(n\\,{frame}),scale=192:108:flags=area"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            raw.to_str().unwrap(),
        ]);
        std::fs::read(raw).unwrap()
    };
    for (scene, which, frame) in [(0, 0, 0u32), (0, 2, 29), (1, 1, 45), (2, 2, 89)] {
        let ours = thumb(scene, which);
        let truth = ffmpeg_frame(frame);
        let other = ffmpeg_frame(if frame < 60 { frame + 30 } else { frame - 60 });
        assert_eq!(ours.as_raw().len(), truth.len());
        let here = mean_abs_diff(ours.as_raw(), &truth);
        let there = mean_abs_diff(ours.as_raw(), &other);
        assert!(
            here < 12.0 && here < there / 2.0,
            "scene {scene} thumbnail {which}: {here:.1} from frame {frame}, {there:.1} from another scene's"
        );
    }

    // Tags only where CLIP ran, with the report's labels.
    let secs = sections(&html);
    assert_eq!(secs.len(), 2);
    for (name, sec) in &secs {
        match name.as_str() {
            "tagged" => {
                assert!(sec.contains("class=\"tags-head\""));
                for s in &tagged_report.scenes {
                    let row = sec.split("<tr class=\"scene\"").nth(s.index + 1).unwrap();
                    for t in s.tags.as_ref().unwrap() {
                        assert!(
                            row.contains(&format!("<span class=\"tag-label\">{}</span>", t.label)),
                            "scene {}: no tag {:?}",
                            s.index,
                            t.label
                        );
                    }
                }
            }
            "plain" => assert!(!sec.contains("class=\"tag"), "no tag column without CLIP"),
            other => panic!("unexpected section {other}"),
        }
    }
    assert!(html.contains("<a href=\"#out-0\">plain</a>"));

    // And what a browser makes of it.
    let Some((dom, png, errors)) = browse(&index, d) else {
        return;
    };
    for (name, scenes) in [("plain", 2), ("tagged", 3)] {
        let (_, sec) = sections(&dom)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no section {name} in the DOM"));
        assert_eq!(sec.matches("<tr class=\"scene\"").count(), scenes, "{name}");
        for which in ["first", "middle", "last"] {
            assert_eq!(
                sec.matches(&format!("class=\"thumb thumb-{which}\""))
                    .count(),
                scenes,
                "{name}: {which} thumbnails"
            );
        }
        assert_eq!(sec.contains("class=\"tags\""), name == "tagged", "{name}");
    }
    for label in tagged_report
        .scenes
        .iter()
        .flat_map(|s| s.tags.iter().flatten())
    {
        assert!(LABELS.contains(&label.label.as_str()));
        assert!(dom.contains(&format!(">{}</span>", label.label)));
    }
    let shot = image::open(&png).unwrap().to_rgb8();
    let colours: HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 100,
        "blank screenshot: {} colours",
        colours.len()
    );
    for bad in ["Uncaught", "ERROR:CONSOLE", "Failed to load resource"] {
        assert!(!errors.contains(bad), "browser console: {errors}");
    }
}

#[test]
fn no_finished_output_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("half.partial")).unwrap();
    let o = report_cmd(&[&empty], &dir.path().join("page"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("no finished framepipe output"), "{err}");
    assert!(err.contains("1 unfinished"), "{err}");
}

#[test]
fn missing_video_and_no_encode_are_named_and_the_rest_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b, c) = (d.join("a.mp4"), d.join("b.mp4"), d.join("c.mp4"));
    for p in [&a, &b, &c] {
        make_cut_clip(
            p,
            "160x120",
            &[("testsrc2", 20), ("smptebars", 20)],
            false,
            &[],
        );
    }
    let out = d.join("out");
    // `run --report` writes the page of what it made into OUT/report/.
    run_ok(&plain_pipeline(d), &out, &[&a, &b], &["--report"]);
    let own = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert_eq!(sections(&own).len(), 2);
    assert_eq!(own.matches("class=\"thumb thumb-first\"").count(), 4);
    let no_encode = pipeline(d, "no-encode.json", r#"{"scenes": {}, "device": "cpu"}"#);
    run_ok(&no_encode, &out, &[&c], &[]);
    std::fs::remove_file(out.join("b/b.mp4")).unwrap();
    std::fs::create_dir_all(out.join("d.partial")).unwrap();
    // A folder name that needs escaping in HTML and in URLs: a copy of a's output.
    let weird = "we<i>rd & #1";
    std::fs::create_dir_all(out.join(weird)).unwrap();
    for f in ["a.mp4", framepipe::output::files::DONE_MARKER] {
        std::fs::copy(out.join("a").join(f), out.join(weird).join(f)).unwrap();
    }
    std::fs::copy(
        out.join("a/a.json"),
        out.join(weird).join(format!("{weird}.json")),
    )
    .unwrap();

    let page = d.join("page");
    let o = report_cmd(&[&out], &page);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    let secs = sections(&html);
    let names: Vec<&str> = secs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "we&lt;i&gt;rd &amp; #1"]);
    assert!(!html.contains(weird));
    for (name, sec) in &secs {
        assert_eq!(sec.matches("<tr class=\"scene\"").count(), 2, "{name}");
        let thumbs = sec.matches("class=\"thumb ").count();
        for link in attr_values(sec, "href")
            .iter()
            .chain(&attr_values(sec, "src"))
        {
            assert!(resolve(&page, link).is_file(), "{name}: {link}");
        }
        match name.as_str() {
            "a" => assert_eq!(thumbs, 6),
            "we&lt;i&gt;rd &amp; #1" => {
                assert_eq!(thumbs, 6);
                assert!(sec.contains("href=\"../out/we%3Ci%3Erd%20%26%20%231/a.mp4#t=0.000,"));
            }
            // The run saved b's thumbnails: only playback is lost with its video.
            "b" => {
                assert_eq!(thumbs, 6);
                assert!(
                    sec.contains("video file b.mp4 is missing from the output folder: no playback"),
                    "{sec}"
                );
                assert!(!sec.contains("class=\"play\""));
            }
            // No encode: a scenes-only run makes no canvases, so no thumbnails either.
            _ => {
                assert_eq!(thumbs, 0);
                assert!(
                    sec.contains(
                        "no video (the pipeline had no `encode`): scenes listed without thumbnails"
                    ),
                    "{sec}"
                );
                let r = typed_report(&out, "c");
                assert!(r.scenes.iter().all(|s| s.thumbnails.is_none()));
                assert!(!out.join("c/thumbs").exists());
            }
        }
    }
    assert!(html.contains("class=\"skipped-item\""));
    assert!(html.contains("d.partial"));
    // The index names the missing video too.
    let index = &html[..html.find("<section").unwrap()];
    assert!(index.contains("b.mp4 is missing"));
}

#[test]
fn transnet_probabilities_draw_a_line_and_batch_writes_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("shots.mp4");
    make_cut_clip(
        &input,
        "160x120",
        &[("testsrc2", 30), ("smptebars", 30)],
        false,
        &[],
    );
    let cfg = pipeline(
        d,
        "shots.json",
        r#"{"scenes": {"detector": "transnetv2"}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#,
    );
    let out = d.join("out");
    // Relative, so the batch's output folder is OUT/shots/.
    let o = framepipe()
        .current_dir(d)
        .args(["-q", "batch", "--report", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg("shots.mp4")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = typed_report(&out, "shots");
    let transitions = r.transitions.as_ref().expect("a transitions block");
    let stored = read_tensor(&out.join("shots").join(&transitions.file), "single").unwrap();

    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    let (_, sec) = &sections(&html)[0];
    assert_eq!(sec.matches("<tr class=\"scene\"").count(), r.scenes.len());
    assert_eq!(sec.matches("class=\"thumb ").count(), 3 * r.scenes.len());
    // One point per stored probability (few enough to draw them all), its height the value.
    let points = attr_values(sec, "points");
    assert_eq!(points.len(), 1, "one probability line");
    let ys: Vec<f64> = points[0]
        .split_whitespace()
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ys.len(), stored.values.len());
    for (y, p) in ys.iter().zip(&stored.values) {
        assert!(
            (y - (40.0 - f64::from(*p) * 38.0)).abs() < 0.06,
            "{y} for {p}"
        );
    }
    // The cut's frame stands out of the line.
    assert!(ys.iter().any(|&y| y < 20.0), "no peak at the cut: {ys:?}");
    assert_eq!(sec.matches("class=\"cut\"").count(), r.scenes.len() - 1);
}

/// The hang this was written for: a long shot whose only keyframes are 10 s apart (x264's
/// default 250-frame interval), reported from its video (`scenes.thumbnails: false`, as for
/// outputs made before the run saved thumbnails). Seeking to the middle frame lands on the
/// keyframe before the frames already decoded; the page used to seek there forever. Now it
/// ends, under a watchdog, with the frames a plain decode picks. With thumbnails from the run
/// (the default) the page links those instead, and they show the same frames.
#[test]
fn long_shot_report_ends_and_run_thumbnails_match_decoded_ones() {
    use common::watchdog::{head, run_timed};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("long.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25:duration=12",
        // The hue turns slowly (no cut), so frames seconds apart differ in colour.
        "-vf",
        "hue=H=0.8*t",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        input.to_str().unwrap(),
    ]);
    let decoded_cfg = pipeline(
        d,
        "decoded.json",
        r#"{"scenes": {"detector": "content", "thumbnails": false}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#,
    );
    let limit = std::time::Duration::from_secs(90);
    let bounded = |cfg: &Path, out: &Path, tag: &str| {
        let mut c = framepipe();
        c.args(["-q", "run", "--report", "--pipeline"])
            .arg(cfg)
            .arg("-o")
            .arg(out)
            .arg(&input);
        let ran = run_timed(c, d, tag, limit);
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "{tag}: {:?} within {limit:?}: {}",
            ran.status,
            head(&ran.stderr)
        );
    };
    let out_decoded = d.join("decoded");
    bounded(&decoded_cfg, &out_decoded, "decoded");
    let r = typed_report(&out_decoded, "long");
    assert_eq!(r.scenes.len(), 1);
    assert!(r.scenes[0].thumbnails.is_none());
    // ffprobe: no keyframe between the first frame and the middle one (6 s), so the seek to
    // the middle lands back on frame 0.
    let keyframes = ffprobe(
        &out_decoded.join("long/long.mp4"),
        &[
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
        ],
    );
    let times: Vec<f64> = keyframes["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["pts_time"].as_str()?.parse().ok())
        .collect();
    assert!(
        times[0] == 0.0 && !times.iter().any(|&t| t > 0.0 && t <= 6.0),
        "keyframes at {times:?}"
    );
    let page_thumb = |page: &Path, which: usize| -> image::RgbImage {
        let html = std::fs::read_to_string(page.join("index.html")).unwrap();
        let src = attr_values(&html, "src")
            .into_iter()
            .find(|s| s.ends_with(&format!("s00000-{which}.jpg")))
            .unwrap_or_else(|| panic!("no thumbnail {which} on {page:?}"));
        image::open(resolve(page, &src)).unwrap().to_rgb8()
    };
    // Frames 0, 150 (6 s: the middle) and 299, as ffmpeg decodes them from the output.
    let truth = |frame: u32| -> Vec<u8> {
        let raw = d.join(format!("f{frame}.rgb"));
        ffmpeg(&[
            "-i",
            out_decoded.join("long/long.mp4").to_str().unwrap(),
            "-vf",
            &format!("select=eq(n\\,{frame}),scale=192:108:flags=area"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            raw.to_str().unwrap(),
        ]);
        std::fs::read(raw).unwrap()
    };
    let out_run = d.join("from-run");
    bounded(&plain_pipeline(d), &out_run, "from-run");
    let r = typed_report(&out_run, "long");
    let listed = r.scenes[0]
        .thumbnails
        .clone()
        .expect("run thumbnails listed");
    for f in &listed.files {
        assert!(out_run.join("long").join(f).is_file(), "{f}");
    }
    // First and last exact; the middle within the candidates' spacing of frame 150 (the second
    // half of a 300-frame 720p scene is thinned to 64 MiB of canvases: every 4th frame).
    assert_eq!((listed.frames[0], listed.frames[2]), (0, 299));
    assert!(listed.frames[1].abs_diff(150) <= 4, "{:?}", listed.frames);
    for (which, frame) in [(0, 0u32), (1, 150), (2, 299)] {
        let other = truth(if frame < 150 { 100 } else { frame - 100 });
        for (page, what, shown) in [
            (out_decoded.join("report"), "decoded", frame),
            (
                out_run.join("report"),
                "from the run",
                listed.frames[which] as u32,
            ),
        ] {
            let t = truth(shown);
            let ours = page_thumb(&page, which);
            let here = mean_abs_diff(ours.as_raw(), &t);
            let there = mean_abs_diff(ours.as_raw(), &other);
            assert!(
                here < 10.0 && here < there / 2.0,
                "{what} thumbnail {which}: {here:.1} from frame {shown}, {there:.1} from another"
            );
        }
    }
}

/// Clips the filters dropped are on the page, greyed, with their reasons; kept ones with their
/// scores; the index counts the kept clips.
#[test]
fn dropped_clips_show_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("curate.mp4");
    make_cut_clip(
        &input,
        "320x240",
        &[("testsrc2", 50), ("color", 50), ("mandelbrot", 50)],
        false,
        &[],
    );
    let cfg = pipeline(
        d,
        "curate.json",
        r#"{"scenes": {"detector": "content"}, "clips": {"min_seconds": 0.5, "trim_seconds": 0.0, "filters": {"max_blank": 0.5}}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#,
    );
    let out = d.join("out");
    run_ok(&cfg, &out, &[&input], &[]);
    let page = d.join("page");
    let o = report_cmd(&[&out], &page);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = page.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(
        html.contains(".clip-item.dropped{opacity:.55"),
        "dropped clips are greyed"
    );
    let Some((dom, _, _)) = browse(&index, d) else {
        assert_eq!(html.matches("class=\"clip-item dropped\"").count(), 1);
        return;
    };
    let items: Vec<&str> = dom.split("<div class=\"clip-item").skip(1).collect();
    assert_eq!(items.len(), 3, "{dom}");
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.starts_with(" dropped\""), i == 1, "clip {i}: {item}");
        assert!(
            item.contains("<span class=\"clip-scores\">motion "),
            "{item}"
        );
    }
    assert!(
        items[1].contains("<span class=\"clip-dropped\">out: blank 1 &gt; 0.5</span>"),
        "{}",
        items[1]
    );
    assert!(items[1].contains("blank 1.00"), "{}", items[1]);
    assert!(items[0].contains("blank 0.00") && items[0].contains("<a class=\"clip\""));
    assert!(
        dom.contains("<td class=\"num n-clips\">2</td>"),
        "kept clips counted"
    );
}
