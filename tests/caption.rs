//! Captions through an OpenAI-compatible server (`caption`, `framepipe caption`), against the
//! stand-in server `tests/fixtures/vlm_server.py`: it checks every request against the
//! chat-completions schema and answers with the colour of the frames it was sent, so a caption
//! attached to the wrong clip shows. The video's twelve scenes are flat colours, each its own.
mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde::Deserialize;

/// The scenes, 2 s each, in an order whose every cut the content detector finds.
const SCENES: [(&str, (u8, u8, u8)); 12] = [
    ("red", (220, 30, 30)),
    ("green", (30, 200, 40)),
    ("blue", (30, 40, 220)),
    ("yellow", (230, 220, 40)),
    ("magenta", (210, 40, 200)),
    ("brown", (110, 70, 30)),
    ("cyan", (40, 210, 220)),
    ("purple", (110, 30, 150)),
    ("white", (240, 240, 240)),
    ("orange", (240, 140, 20)),
    ("gray", (120, 120, 120)),
    ("pink", (250, 160, 190)),
];
const SCENE_SECONDS: f64 = 2.0;
const KEY: &str = "sk-stand-in-4f9a1c";
const KEY_VAR: &str = "FRAMEPIPE_TEST_CAPTION_KEY";
const MODEL: &str = "stand-in-vlm";
const PROMPT: &str = "Say the colour.";

/// The stand-in server, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        let port_file = dir.join(format!("port-{}", rand_suffix()));
        let log = dir.join(format!("requests-{}.jsonl", rand_suffix()));
        let child = Command::new(venv_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vlm_server.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .args(["--log", log.to_str().unwrap()])
            .args(["--key", KEY, "--model", MODEL, "--prompt", PROMPT])
            .args(["--prompt", "Name the colour."])
            .args(args)
            .spawn()
            .expect("the stand-in server starts");
        let mut server = Server {
            child,
            port: 0,
            log,
        };
        let started = Instant::now();
        while server.port == 0 {
            match std::fs::read_to_string(&port_file) {
                Ok(p) => server.port = p.trim().parse().unwrap(),
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("the stand-in server did not start: {e}"),
            }
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The chat requests it has seen so far (and empties the log).
    fn take_requests(&self) -> Vec<Request> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        std::fs::write(&self.log, "").unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Request>(l).unwrap())
            .filter(|r| r.path == "/v1/chat/completions")
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One line of the server's log.
#[derive(Debug, Deserialize)]
struct Request {
    path: String,
    status: u16,
    #[serde(default)]
    fault: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    invalid: Option<String>,
    #[serde(default)]
    in_flight: Option<u32>,
}

/// The twelve-colour video: 320x240 (4:3, so 720p `fit` pillarboxes it: the bars must not be
/// sent), 24 fps.
fn colours_video(dir: &Path) -> PathBuf {
    let path = dir.join("colours.mp4");
    let mut args: Vec<String> = Vec::new();
    for (_, (r, g, b)) in SCENES {
        args.extend([
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("color=c=0x{r:02x}{g:02x}{b:02x}:s=320x240:r=24:d={SCENE_SECONDS}"),
        ]);
    }
    let inputs: String = (0..SCENES.len()).map(|i| format!("[{i}:v]")).collect();
    let filter = format!(
        "{inputs}concat=n={}:v=1:a=0,format=yuv420p[v]",
        SCENES.len()
    );
    args.extend([
        "-filter_complex".into(),
        filter,
        "-map".into(),
        "[v]".into(),
    ]);
    args.extend(["-c:v", "libx264", "-g", "24"].map(String::from));
    args.push(path.to_str().unwrap().into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    path
}

/// A pipeline with clips (1 s at least, 0.25 s trimmed: one clip per scene) and, when
/// `caption` is given, that `caption` section.
fn config(dir: &Path, name: &str, caption: Option<String>) -> PathBuf {
    let caption = caption.map_or(String::new(), |c| format!(r#", "caption": {c}"#));
    pipeline(
        dir,
        name,
        &format!(
            r#"{{"normalize": {{"resolution": "720p", "mode": "fit"}}, "scenes": {{"detector": "content"}},
                "clips": {{"min_seconds": 1.0, "trim_seconds": 0.25}}, "encode": {{"preset": "ultrafast"}},
                "device": "cpu"{caption}}}"#
        ),
    )
}

/// A `caption` section for `endpoint`: 1 s timeout, 3 retries, concurrency 8, unless `extra`
/// (`, "key": value` pairs) says otherwise.
fn caption_section(endpoint: &str, extra: &str) -> String {
    let mut section: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&format!(
        r#"{{"endpoint": "{endpoint}", "model": "{MODEL}", "api_key_env": "{KEY_VAR}", "prompt": "{PROMPT}", "timeout_seconds": 1, "retries": 3, "concurrency": 8}}"#
    ))
    .unwrap();
    let extra: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&format!("{{{}}}", extra.trim_start_matches(','))).unwrap();
    section.extend(extra);
    serde_json::Value::Object(section).to_string()
}

fn framepipe_with_key() -> Command {
    let mut c = framepipe();
    c.env(KEY_VAR, KEY);
    c
}

fn run(cfg: &Path, out: &Path, input: &Path) -> Output {
    framepipe_with_key()
        .args(["run", "--pipeline"])
        .arg(cfg)
        .arg("-o")
        .arg(out)
        .arg(input)
        .output()
        .unwrap()
}

/// `clips.jsonl` of the output, as JSON values.
fn clips(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("colours/clips.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The colour of the scene a clip lies in (by its middle).
fn colour_of(clip: &serde_json::Value) -> &'static str {
    let middle = (clip["start_time"].as_f64().unwrap() + clip["end_time"].as_f64().unwrap()) / 2.0;
    SCENES[(middle / SCENE_SECONDS) as usize].0
}

/// Every clip's caption names its own scene's colour.
fn assert_captions_match(clips: &[serde_json::Value]) {
    assert_eq!(clips.len(), SCENES.len(), "one clip per scene");
    for c in clips {
        let caption = c["caption"]
            .as_str()
            .unwrap_or_else(|| panic!("no caption: {c}"));
        let want = format!("{} scene, brightness ", colour_of(c));
        assert!(
            caption.starts_with(&want),
            "{}: {caption:?}, want {want:?}",
            c["id"]
        );
        assert_eq!(c["caption_model"], MODEL);
    }
}

/// No file of the output holds the key, nor does what the command printed.
fn assert_key_nowhere(dir: &Path, printed: &Output) {
    assert!(!String::from_utf8_lossy(&printed.stdout).contains(KEY));
    assert!(!stderr(printed).contains(KEY));
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the key is in {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The cache's lines: (key, caption), each key once.
fn cache_lines(out_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(out_dir.join("captions.jsonl")).unwrap();
    let mut lines = BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        assert!(
            lines
                .insert(key, v["caption"].as_str().unwrap().to_string())
                .is_none(),
            "a key written twice: {l}"
        );
    }
    lines
}

/// Requests the stand-in refused as invalid (none are expected).
fn assert_all_valid(requests: &[Request]) {
    let invalid: Vec<&String> = requests.iter().filter_map(|r| r.invalid.as_ref()).collect();
    assert!(invalid.is_empty(), "invalid requests: {invalid:?}");
}

/// With concurrency 8, answer delays shuffled by up to 400 ms and every fault in play (429 with
/// Retry-After, 500, an answer after the timeout, malformed JSON, a dropped connection), every
/// clip gets its own caption; the server saw exactly the requests needed (one per clip, one more
/// per fault); a rerun, `framepipe caption` and `--refresh` send nothing; a new prompt asks
/// again; the key is nowhere; the report page shows the captions.
#[test]
fn every_clip_gets_its_own_caption_through_faults_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = colours_video(d);
    let server = Server::start(
        d,
        &[
            "--jitter-ms",
            "400",
            "--faults",
            "ok,429,500,late,malformed,drop",
        ],
    );
    let cfg = config(d, "cap.json", Some(caption_section(&server.endpoint(), "")));
    let out = d.join("out");
    let o = run(&cfg, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = clips(&out);
    assert_captions_match(&all);
    let requests = server.take_requests();
    assert_all_valid(&requests);
    let faulted: HashSet<&str> = requests
        .iter()
        .filter(|r| r.fault.as_deref().is_some_and(|f| f != "ok"))
        .map(|r| r.content.as_deref().unwrap())
        .collect();
    assert!(faulted.len() >= 8, "faults in play: {requests:?}");
    assert_eq!(requests.len(), SCENES.len() + faulted.len(), "{requests:?}");
    let statuses: HashSet<u16> = requests.iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&429) && statuses.contains(&500),
        "{statuses:?}"
    );
    let first = report(&out, "colours");
    let counts = &first["clips"]["captions"];
    assert_eq!(counts["captioned"], 12);
    assert_eq!(counts["requests"], requests.len() as u64);
    assert_eq!(cache_lines(&out.join("colours")).len(), 12);
    assert_key_nowhere(&out, &o);

    // A rerun: every answer from captions.jsonl, nothing sent.
    let o = run(&cfg, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.take_requests().len(), 0);
    assert_captions_match(&clips(&out));
    assert_eq!(
        report(&out, "colours")["clips"]["captions"]["from_cache"],
        12
    );
    assert_eq!(
        cache_lines(&out.join("colours")).len(),
        12,
        "nothing written twice"
    );

    // `framepipe caption` on the finished output: all current, nothing sent; --refresh asks the
    // cache only.
    for refresh in [false, true] {
        let mut c = framepipe_with_key();
        c.args(["caption"]).arg(&out).arg("--pipeline").arg(&cfg);
        if refresh {
            c.arg("--refresh");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(server.take_requests().len(), 0, "refresh {refresh}");
    }
    assert_captions_match(&clips(&out));

    // A changed prompt asks again, once per clip.
    let cfg2 = config(
        d,
        "cap2.json",
        Some(caption_section(&server.endpoint(), "").replace(PROMPT, "Name the colour.")),
    );
    let o = run(&cfg2, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let requests = server.take_requests();
    assert_all_valid(&requests);
    let distinct: HashSet<&str> = requests
        .iter()
        .map(|r| r.content.as_deref().unwrap())
        .collect();
    assert_eq!(distinct.len(), 12, "{requests:?}");
    assert_captions_match(&clips(&out));
    assert_eq!(
        cache_lines(&out.join("colours")).len(),
        24,
        "both prompts' answers kept"
    );

    // The report page shows each clip's caption.
    let page = d.join("page");
    let o = framepipe()
        .arg("report")
        .arg(&out)
        .arg("-o")
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    let dom = common::browser::browse(&page.join("index.html"), d).map_or(html, |(dom, _, _)| dom);
    for c in clips(&out) {
        let shown = format!(
            "<q class=\"clip-caption\" title=\"{MODEL}\">{}</q>",
            c["caption"].as_str().unwrap()
        );
        assert!(dom.contains(&shown), "{shown} not on the page");
    }
}

/// Requests go out while decoding goes on, up to `concurrency` at once.
#[test]
fn requests_overlap_up_to_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = colours_video(d);
    let server = Server::start(d, &["--delay-ms", "1500"]);
    let cfg = config(
        d,
        "cap.json",
        Some(caption_section(
            &server.endpoint(),
            r#", "timeout_seconds": 30, "concurrency": 3"#,
        )),
    );
    let out = d.join("out");
    let o = run(&cfg, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_captions_match(&clips(&out));
    let requests = server.take_requests();
    let most = requests.iter().filter_map(|r| r.in_flight).max().unwrap();
    assert_eq!(most, 3, "{requests:?}");
}

/// `on_error: skip`: a clip whose every attempt fails records why and the input completes;
/// `fail`: the input fails naming the clip, the answers already paid for stay in the output's
/// captions.jsonl, and the next run asks only for the rest.
#[test]
fn failed_captions_skip_or_fail_and_paid_answers_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = colours_video(d);
    // Every 4th clip to arrive fails on every attempt: three of the twelve.
    let server = Server::start(d, &["--faults", "ok,ok,ok,fail"]);
    let skip = config(
        d,
        "skip.json",
        Some(caption_section(
            &server.endpoint(),
            r#", "retries": 1, "on_error": "skip""#,
        )),
    );
    let out = d.join("skip");
    let o = run(&skip, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = clips(&out);
    let failed: Vec<&serde_json::Value> = all
        .iter()
        .filter(|c| c["caption_error"].is_string())
        .collect();
    assert_eq!(failed.len(), 3, "{all:?}");
    for c in &failed {
        let error = c["caption_error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "{}/chat/completions answered HTTP 500",
                server.endpoint()
            )) && error.ends_with("(after 2 attempts)"),
            "{error}"
        );
        assert!(c["caption"].is_null());
    }
    let requests = server.take_requests();
    assert_eq!(requests.len(), 9 + 3 * 2, "{requests:?}");
    assert_eq!(report(&out, "colours")["clips"]["captions"]["failed"], 3);

    // `fail`, on a fresh output: the input fails naming a clip, nothing looks finished.
    let fail = config(
        d,
        "fail.json",
        Some(caption_section(
            &server.endpoint(),
            r#", "retries": 1, "on_error": "fail""#,
        )),
    );
    let out = d.join("fail");
    let o = run(&fail, &out, &input);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("captioning the clip from output frame") && err.contains("HTTP 500"),
        "{err}"
    );
    assert!(!out.join("colours").exists(), "no finished output");
    let partial = out.join("colours.partial");
    let kept: Vec<PathBuf> = walk(&partial);
    assert_eq!(
        kept,
        [partial.join("captions.jsonl")],
        "only the paid answers stay"
    );
    let paid = cache_lines(&partial).len();
    assert!(paid >= 3, "{paid} answers kept");
    server.take_requests();
    drop(server);

    // The server mended: the next run asks only for the clips not answered before.
    let server = Server::start(d, &[]);
    let mended = config(
        d,
        "fail.json",
        Some(caption_section(
            &server.endpoint(),
            r#", "retries": 1, "on_error": "fail""#,
        )),
    );
    let o = run(&mended, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_captions_match(&clips(&out));
    assert_eq!(server.take_requests().len(), 12 - paid);
    assert_eq!(
        report(&out, "colours")["clips"]["captions"]["from_cache"],
        paid as u64
    );
}

/// An unreachable endpoint, a refused key, a server that is not an OpenAI-compatible API and an
/// unset key variable: exit 2 before decoding, naming the endpoint and the HTTP status, and no
/// output at all; unreachable with `on_error: skip` completes with each clip's reason.
#[test]
fn bad_endpoints_are_clear_errors_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = colours_video(d);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = format!("http://127.0.0.1:{closed}/v1");
    let server = Server::start(d, &[]);
    let web = Server::start(d, &["--not-openai"]);
    let cases: [(&str, String, Option<&str>, &[&str]); 4] = [
        ("unreachable", nowhere.clone(), Some(KEY), &["cannot reach", "/v1/models"]),
        (
            "wrong key",
            server.endpoint(),
            Some("sk-wrong"),
            &["/v1/models answered HTTP 401", "the key in $FRAMEPIPE_TEST_CAPTION_KEY was refused"],
        ),
        (
            "not an API",
            web.endpoint(),
            Some(KEY),
            &["/v1/models answered HTTP 200 with something that is not an OpenAI-compatible response"],
        ),
        ("no key", server.endpoint(), None, &["the environment variable FRAMEPIPE_TEST_CAPTION_KEY is not set"]),
    ];
    for (what, endpoint, key, expected) in cases {
        let cfg = config(d, "bad.json", Some(caption_section(&endpoint, "")));
        let out = d.join(format!("out-{}", what.replace(' ', "-")));
        let mut c = framepipe();
        c.env_remove(KEY_VAR);
        if let Some(key) = key {
            c.env(KEY_VAR, key);
        }
        let o = c
            .args(["run", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(&out)
            .arg(&input)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("caption: "), "{what}: {err}");
        for e in expected {
            assert!(err.contains(e), "{what}: {err} lacks {e}");
        }
        if what != "no key" {
            assert!(err.contains(endpoint.as_str()), "{what}: {err}");
        }
        assert!(
            !err.contains("sk-wrong") && !err.contains(KEY),
            "{what}: the key printed"
        );
        assert!(!out.exists(), "{what}: nothing written");
    }

    let cfg = config(
        d,
        "skip.json",
        Some(caption_section(&nowhere, r#", "on_error": "skip""#)),
    );
    let out = d.join("skipped");
    let o = run(&cfg, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    for c in clips(&out) {
        let error = c["caption_error"].as_str().unwrap();
        assert!(error.starts_with("not attempted: cannot reach"), "{error}");
    }
}

/// `framepipe caption` captions a finished output made without captions, from its clip files
/// (the bars left out again: the stand-in checks), and again sends nothing.
#[test]
fn caption_command_captions_finished_outputs_later() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = colours_video(d);
    let plain = config(d, "plain.json", None);
    let out = d.join("out");
    let o = run(&plain, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(clips(&out).iter().all(|c| c["caption"].is_null()));
    let server = Server::start(d, &["--jitter-ms", "200"]);
    let cfg = config(d, "cap.json", Some(caption_section(&server.endpoint(), "")));
    let caption = || {
        framepipe_with_key()
            .arg("caption")
            .arg(&out)
            .arg("--pipeline")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let o = caption();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("12 clips of 1 outputs captioned"),
        "{}",
        stderr(&o)
    );
    assert_captions_match(&clips(&out));
    let requests = server.take_requests();
    assert_all_valid(&requests);
    assert_eq!(requests.len(), 12);
    let o = caption();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("12 already captioned"),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.take_requests().len(), 0);
    assert_key_nowhere(&out, &o);
    // A pipeline without a caption section says so.
    let o = framepipe_with_key()
        .arg("caption")
        .arg(&out)
        .arg("--pipeline")
        .arg(&plain)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no caption section"),
        "{}",
        stderr(&o)
    );
}

/// `search --text` over captioned outputs: hits carry both the CLIP score and the captions'
/// BM25 score; `--rank captions` and `hybrid` put the scene whose caption names the colour first,
/// with the same CLIP scores `--rank clip` gives those rows.
#[test]
fn search_ranks_scenes_by_captions_next_to_clip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = colours_video(d);
    let server = Server::start(d, &[]);
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny");
    let clip = format!(
        r#"{{"model": {:?}, "labels": ["a colour"], "sample": {{"every_n_frames": 6}}, "batch_size": 8}}"#,
        model.display().to_string()
    );
    let cfg = pipeline(
        d,
        "tagged.json",
        &format!(
            r#"{{"scenes": {{"detector": "content"}}, "clip": {clip}, "clips": {{"min_seconds": 1.0, "trim_seconds": 0.25}},
                "encode": {{"preset": "ultrafast"}}, "device": "cpu", "caption": {}}}"#,
            caption_section(&server.endpoint(), "")
        ),
    );
    let out = d.join("out");
    let o = run(&cfg, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_captions_match(&clips(&out));
    let search = |rank: &str| -> Vec<serde_json::Value> {
        let o = framepipe()
            .args([
                "-q", "search", "--device", "cpu", "--format", "json", "--top", "12",
            ])
            .arg("--model")
            .arg(&model)
            .args(["--text", "a magenta picture", "--rank", rank])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{rank}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["results"][0]["hits"].as_array().unwrap().clone()
    };
    let magenta = SCENES.iter().position(|(c, _)| *c == "magenta").unwrap() as u64;
    let by_clip = search("clip");
    assert_eq!(by_clip.len(), 12);
    let clip_score = |scene: u64| {
        by_clip.iter().find(|h| h["scene"] == scene).unwrap()["score"]
            .as_f64()
            .unwrap()
    };
    for hit in &by_clip {
        let named = hit["captions"].as_str().unwrap().starts_with("magenta ");
        assert_eq!(hit["caption_score"].is_number(), named, "{hit}");
    }
    for rank in ["captions", "hybrid"] {
        let hits = search(rank);
        assert_eq!(hits[0]["scene"], magenta, "{rank}: {hits:?}");
        assert!(hits[0]["caption_score"].as_f64().unwrap() > 0.0);
        assert_eq!(hits[0]["fused"].is_number(), rank == "hybrid");
        for h in &hits {
            let (ours, device) = (
                h["score"].as_f64().unwrap(),
                clip_score(h["scene"].as_u64().unwrap()),
            );
            assert!(
                (ours - device).abs() < 2e-3,
                "{rank}: CLIP score {ours} vs {device}"
            );
        }
    }
    assert_eq!(
        search("captions").len(),
        1,
        "only one scene's captions name magenta"
    );
    // Scene rows only: captions belong to scenes' clips.
    let o = framepipe()
        .args([
            "search", "--device", "cpu", "--frames", "--rank", "hybrid", "--text", "red",
        ])
        .arg("--model")
        .arg(&model)
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("leave out --frames"), "{}", stderr(&o));
}
