//! `framepipe dedup` judged on a constructed set: generated sources (and the shared videos
//! when present), each of three of them re-made by the `ffmpeg` CLI the ways re-uploads
//! change footage (a crf 35 re-encode, 480p, 30 fps, a 10% crop, letterboxed to 4:3, 10%
//! faster, brighter, a logo in a corner, the first 0.5 s cut off). Pairwise precision and recall of the
//! groups against the truth (a variant and its source are the same footage, nothing else is),
//! the kept clip against the rule computed here from `clips.jsonl`, incremental batches against
//! one pass, `export --dedup` read back by pyarrow, and the bad inputs.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use framepipe::clips::signature::{keys, similarity};
use framepipe::dedup::groups::Group;
use framepipe::output::clip_record::ClipRecord;
use framepipe::output::files::DONE_MARKER;

/// Distinct moving sources, 4 s at 320x180, 25 fps, no cut inside; the first three also get
/// variants.
const SOURCES: &[(&str, &str)] = &[
    ("life", "life=size=320x180:rate=25:ratio=0.4:seed=3:mold=20"),
    (
        "zoom",
        "mandelbrot=size=320x180:rate=25:end_scale=0.3:end_pts=40",
    ),
    (
        "gradients",
        "gradients=size=320x180:rate=25:speed=0.03:seed=5:nb_colors=3:c0=0x2ab87f:c1=0x3060a0:c2=0xe0a040",
    ),
    ("cellauto", "cellauto=size=320x180:rate=25:rule=30:seed=1"),
    ("testsrc2", "testsrc2=size=320x180:rate=25"),
    ("sierpinski", "sierpinski=size=320x180:rate=25:seed=4"),
    ("testsrc", "testsrc=size=320x180:rate=25"),
    ("rule110", "cellauto=size=320x180:rate=25:rule=110:seed=2"),
    ("life2", "life=size=320x180:rate=25:ratio=0.2:seed=9:mold=5"),
    (
        "gradients2",
        "gradients=size=320x180:rate=25:speed=0.05:seed=11:nb_colors=4:c0=0xd02020:c1=0x20d020:c2=0x2020d0:c3=0xf0f0f0",
    ),
    (
        "seahorse",
        "mandelbrot=size=320x180:rate=25:start_x=-0.75:start_y=0.1:start_scale=0.2:end_scale=0.1:end_pts=40",
    ),
];

/// How a variant is made: ffmpeg arguments before the input, and the filter after it.
const VARIANTS: &[(&str, &[&str], &str)] = &[
    ("crf35", &[], "null"),
    ("480p", &[], "scale=854:480"),
    ("fps30", &[], "fps=30"),
    ("crop10", &[], "crop=iw*0.9:ih*0.9,scale=320:180"),
    ("letterbox", &[], "scale=240:135,pad=240:180:0:22:black"),
    ("faster10", &[], "setpts=PTS/1.1"),
    ("brighter", &[], "eq=brightness=0.1"),
    (
        "logo",
        &[],
        "drawbox=x=iw-55:y=5:w=50:h=20:color=white@0.8:t=fill",
    ),
    ("trim", &["-ss", "0.5"], "null"),
];

fn make_source(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(format!("{name}.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("{source},trim=duration=4,format=yuv420p"),
        "-c:v",
        "libx264",
        "-crf",
        "18",
        path.to_str().unwrap(),
    ]);
    path
}

fn make_variant(
    dir: &Path,
    source: &Path,
    (name, before, filter): (&str, &[&str], &str),
) -> PathBuf {
    let stem = source.file_stem().unwrap().to_str().unwrap();
    let path = dir.join(format!("{stem}-{name}.mp4"));
    let mut args: Vec<&str> = before.to_vec();
    let crf = if name == "crf35" { "35" } else { "23" };
    args.extend([
        "-i",
        source.to_str().unwrap(),
        "-vf",
        filter,
        "-c:v",
        "libx264",
        "-crf",
        crf,
        path.to_str().unwrap(),
    ]);
    ffmpeg(&args);
    path
}

/// The constructed set's videos; the first three sources' variants are named `SOURCE-VARIANT`.
fn constructed_set(dir: &Path) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = SOURCES
        .iter()
        .map(|(name, source)| make_source(dir, name, source))
        .collect();
    if let Some(media) = shared_path("media") {
        let mut shared: Vec<PathBuf> = std::fs::read_dir(&media)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        shared.sort();
        for (i, video) in shared.iter().take(4).enumerate() {
            let path = dir.join(format!("shared{i}.mp4"));
            ffmpeg(&[
                "-i",
                video.to_str().unwrap(),
                "-t",
                "4",
                "-an",
                "-vf",
                "scale=320:180,setsar=1",
                "-c:v",
                "libx264",
                path.to_str().unwrap(),
            ]);
            sources.push(path);
        }
    }
    let mut all = sources.clone();
    for source in &sources[..3] {
        for &variant in VARIANTS {
            all.push(make_variant(dir, source, variant));
        }
    }
    all
}

/// The test CLIP model (random weights, 16-value embeddings).
fn clip_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

/// Runs the clips pipeline, with CLIP, on `inputs` into `out` (one output folder per input).
fn run_all(dir: &Path, inputs: &[PathBuf], out: &Path) {
    let cfg = pipeline(
        dir,
        "dedup.json",
        &format!(
            r#"{{"scenes": {{"detector": "content"}}, "clip": {{"model": {:?}, "labels": ["a"], "sample": {{"every_n_frames": 10}}}}, "clips": {{"min_seconds": 0.5, "max_seconds": 10.0, "trim_seconds": 0.0}}, "device": "cpu"}}"#,
            clip_fixture().display().to_string()
        ),
    );
    let run = framepipe()
        .args(["run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(out)
        .args(inputs)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
}

fn dedup(args: &[&std::ffi::OsStr]) -> std::process::Output {
    framepipe().arg("dedup").args(args).output().unwrap()
}

fn groups(dir: &Path) -> Vec<Group> {
    std::fs::read_to_string(dir.join("duplicates.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every clip record under `out`, by id.
fn records(out: &Path) -> BTreeMap<String, ClipRecord> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let clips = entry.unwrap().path().join("clips.jsonl");
        for line in std::fs::read_to_string(&clips).unwrap().lines() {
            let record: ClipRecord = serde_json::from_str(line).unwrap();
            all.insert(record.id.clone(), record);
        }
    }
    all
}

/// The footage a clip id shows: its output's stem up to a variant suffix, and its number.
fn family(id: &str) -> (&str, &str) {
    let (stem, number) = id.rsplit_once('_').unwrap();
    (stem.split('-').next().unwrap(), number)
}

fn pairs_of(groups: &[Group]) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for g in groups {
        for (i, a) in g.members.iter().enumerate() {
            for b in &g.members[i + 1..] {
                let (x, y) = (
                    a.id.clone().min(b.id.clone()),
                    a.id.clone().max(b.id.clone()),
                );
                pairs.insert((x, y));
            }
        }
    }
    pairs
}

#[test]
fn dedup_by_hash_groups_reuploads_keeps_by_the_rule_and_batches_like_one_pass() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let inputs = constructed_set(dir);
    let out = dir.join("out");
    run_all(dir, &inputs, &out);
    let records = records(&out);
    // The sources with variants are one shot each (a shared video may hold several: each is
    // other footage).
    assert_eq!(
        records.keys().filter(|id| id.starts_with("life")).count(),
        11,
        "{:?}",
        records.keys()
    );

    let all_at_once = dir.join("all");
    let run = dedup(&[out.as_ref(), "-o".as_ref(), all_at_once.as_ref()]);
    assert!(run.status.success(), "{}", stderr(&run));
    eprintln!("{}", stderr(&run));
    let found = groups(&all_at_once);

    let ids: Vec<&String> = records.keys().collect();
    let all_pairs: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            ids[i + 1..]
                .iter()
                .map(move |b| ((*a).clone(), (*b).clone()))
        })
        .collect();
    let truth: BTreeSet<(String, String)> = all_pairs
        .iter()
        .filter(|(a, b)| family(a) == family(b))
        .cloned()
        .collect();
    let predicted = pairs_of(&found);
    let right = predicted.intersection(&truth).count() as f64;
    let (precision, recall) = (
        right / predicted.len().max(1) as f64,
        right / truth.len() as f64,
    );
    eprintln!(
        "dedup --by hash on {} clips: {} groups, precision {precision:.3}, recall {recall:.3} ({} true pairs)",
        records.len(),
        found.len(),
        truth.len()
    );
    let pair_similarity =
        |(a, b): &(String, String)| similarity(&records[a].phash, &records[b].phash);
    let (least_alike_copy, most_alike_distinct) =
        all_pairs.iter().fold((1.0f64, 0.0f64), |(c, d), p| {
            if truth.contains(p) {
                (c.min(pair_similarity(p)), d)
            } else {
                (c, d.max(pair_similarity(p)))
            }
        });
    eprintln!(
        "least alike copy {least_alike_copy:.3}, most alike distinct pair {most_alike_distinct:.3}"
    );
    for (id_a, id_b) in truth.difference(&predicted) {
        let (a, b) = (&records[id_a].phash, &records[id_b].phash);
        eprintln!(
            "missed {id_a} {id_b}: similarity {:.3}, keys {} bits apart",
            similarity(a, b),
            keys(a)
                .iter()
                .flat_map(|x| keys(b).map(|y| x.distance(y)))
                .min()
                .unwrap()
        );
    }
    let joined_distinct: Vec<_> = predicted.difference(&truth).collect();
    assert!(
        joined_distinct.is_empty(),
        "distinct clips joined: {joined_distinct:?}"
    );
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision}, recall {recall}"
    );

    // The kept clip: longest, then most motion, then the first id.
    for g in &found {
        let best = g
            .members
            .iter()
            .map(|m| &records[&m.id])
            .max_by(|a, b| {
                (a.end_time - a.start_time)
                    .total_cmp(&(b.end_time - b.start_time))
                    .then(a.motion.total_cmp(&b.motion))
                    .then(b.id.cmp(&a.id))
            })
            .unwrap();
        assert_eq!(g.kept, best.id);
        assert_eq!(g.members[0].id, g.kept);
    }

    // Incremental: the sources first, the variants against their index, is the same result.
    let batched = dir.join("batched");
    let folders = |variants: bool| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().contains('-') == variants)
            .collect();
        v.sort();
        v
    };
    let mut first: Vec<std::ffi::OsString> = folders(false).into_iter().map(Into::into).collect();
    first.extend(["-o".into(), batched.clone().into()]);
    let run = framepipe().arg("dedup").args(&first).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(groups(&batched).is_empty());
    let mut second: Vec<std::ffi::OsString> = folders(true).into_iter().map(Into::into).collect();
    second.extend(["-o".into(), batched.clone().into()]);
    let run = framepipe().arg("dedup").args(&second).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        std::fs::read_to_string(batched.join("duplicates.jsonl")).unwrap(),
        std::fs::read_to_string(all_at_once.join("duplicates.jsonl")).unwrap()
    );
    // The same batch again adds nothing and changes nothing.
    let run = framepipe().arg("dedup").args(&second).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!("0 clips of {} outputs added", folders(true).len())),
        "{}",
        stderr(&run)
    );
    assert_eq!(groups(&batched), found);

    // export --dedup leaves each group's other members out (read by pyarrow).
    let shards = dir.join("shards");
    let export = framepipe()
        .arg("export")
        .arg(&out)
        .args(["--format", "parquet", "--dedup"])
        .arg(all_at_once.join("duplicates.jsonl"))
        .arg("-o")
        .arg(&shards)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    #[derive(serde::Deserialize)]
    struct Read {
        rows: Vec<Row>,
    }
    #[derive(serde::Deserialize)]
    struct Row {
        id: String,
    }
    let read: Read = read_export("parquet", &shards);
    let exported: BTreeSet<String> = read.rows.into_iter().map(|r| r.id).collect();
    let expected: BTreeSet<String> = records
        .keys()
        .filter(|id| {
            !found
                .iter()
                .any(|g| g.kept != **id && g.members.iter().any(|m| m.id == **id))
        })
        .cloned()
        .collect();
    assert_eq!(exported, expected);

    // check duplicate_of: another re-upload of a source fails, naming the indexed clip; a
    // clip the index does not hold passes; JUnit carries the failure (Python's XML parser).
    let upload = dir.join("upload.mp4");
    ffmpeg(&[
        "-ss",
        "0.2",
        "-i",
        dir.join("life.mp4").to_str().unwrap(),
        "-vf",
        "scale=288:162,eq=brightness=0.05",
        "-c:v",
        "libx264",
        "-crf",
        "30",
        upload.to_str().unwrap(),
    ]);
    let fresh = make_source(dir, "fresh", "cellauto=size=320x180:rate=25:rule=90:seed=7");
    let rules = pipeline(
        dir,
        "rules.json",
        &format!(
            r#"{{"rule_sets": [{{"name": "library", "rules": {{"duplicate_of": {{"index": {:?}, "max_similarity": 0.7}}}}}}]}}"#,
            all_at_once.join("index").display().to_string()
        ),
    );
    let junit = dir.join("junit.xml");
    let check = |input: &Path| {
        framepipe()
            .args(["check", "--format", "json", "--rules"])
            .arg(&rules)
            .arg("--junit")
            .arg(&junit)
            .arg(input)
            .output()
            .unwrap()
    };
    let copy = check(&upload);
    assert_eq!(copy.status.code(), Some(1), "{}", stderr(&copy));
    let report: serde_json::Value = serde_json::from_slice(&copy.stdout).unwrap();
    let outcome = &report["files"][0]["outcomes"][0];
    assert_eq!(outcome["rule"], "duplicate_of");
    let actual = outcome["actual"].as_str().unwrap();
    assert!(
        actual.contains("like clip life")
            && actual.contains(out.join("life").file_name().unwrap().to_str().unwrap()),
        "{actual}"
    );
    assert!(outcome["at"].is_array(), "{outcome}");
    let xml = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as ET; r = ET.parse(sys.argv[1]).getroot(); f = [c for c in r.iter('testcase') if c.find('failure') is not None]; print(len(f), f[0].get('name'))",
        ])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&xml.stdout).trim(),
        "1 duplicate_of"
    );
    let distinct = check(&fresh);
    assert_eq!(
        distinct.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&distinct.stdout)
    );
    eprintln!(
        "check duplicate_of: {actual}; distinct: {}",
        String::from_utf8_lossy(&distinct.stdout)
    );

    // By embedding (the test's random CLIP model: the figures say nothing of semantic quality,
    // which needs real weights): the groups are those of exact search over the embeddings in
    // clips.jsonl at the threshold, and `both` joins what either joins.
    let by_embedding = dir.join("by-embedding");
    let run = dedup(&[
        out.as_ref(),
        "-o".as_ref(),
        by_embedding.as_ref(),
        "--by".as_ref(),
        "embedding".as_ref(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let embedded = groups(&by_embedding);
    let exact: BTreeSet<(String, String)> = all_pairs
        .iter()
        .filter(|(a, b)| {
            let (x, y) = (&records[a].embedding, &records[b].embedding);
            cosine(x.as_ref().unwrap(), y.as_ref().unwrap()) >= 0.95
        })
        .cloned()
        .collect();
    assert_eq!(pairs_of(&embedded), closure(&exact, &ids));
    let right = pairs_of(&embedded).intersection(&truth).count() as f64;
    eprintln!(
        "dedup --by embedding (random CLIP model): {} groups, precision {:.3}, recall {:.3}",
        embedded.len(),
        right / pairs_of(&embedded).len().max(1) as f64,
        right / truth.len() as f64
    );
    for g in &embedded {
        assert!(g
            .members
            .iter()
            .all(|m| m.cosine.is_some() && m.similarity.is_none()));
    }
    let by_both = dir.join("by-both");
    let run = dedup(&[
        out.as_ref(),
        "-o".as_ref(),
        by_both.as_ref(),
        "--by".as_ref(),
        "both".as_ref(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut either = pairs_of(&found);
    either.extend(pairs_of(&embedded));
    assert_eq!(pairs_of(&groups(&by_both)), closure(&either, &ids));
}

/// Every pair of clips joined through a chain of `pairs`.
fn closure(pairs: &BTreeSet<(String, String)>, ids: &[&String]) -> BTreeSet<(String, String)> {
    let mut group: BTreeMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    loop {
        let mut changed = false;
        for (a, b) in pairs {
            let (ga, gb) = (group[a.as_str()], group[b.as_str()]);
            if ga != gb {
                let (to, from) = (ga.min(gb), ga.max(gb));
                for g in group.values_mut() {
                    if *g == from {
                        *g = to;
                    }
                }
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    ids.iter()
        .enumerate()
        .flat_map(|(i, a)| ids[i + 1..].iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| group[a.as_str()] == group[b.as_str()])
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect()
}

/// One small finished output in `out` (a 1 s clip), for the bad-input cases.
fn small_output(dir: &Path, out: &Path, name: &str) -> PathBuf {
    let video = make_source(dir, name, "testsrc2=size=160x90:rate=25");
    run_all(dir, &[video], out);
    out.join(name)
}

#[test]
fn dedup_refuses_an_index_of_another_version_or_threshold_and_skips_unfinished_outputs() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let out = dir.join("out");
    let output = small_output(dir, &out, "one");
    let result = dir.join("result");
    let run = dedup(&[out.as_ref(), "-o".as_ref(), result.as_ref()]);
    assert!(run.status.success(), "{}", stderr(&run));

    // A threshold outside (0, 1].
    let run = dedup(&[
        out.as_ref(),
        "-o".as_ref(),
        dir.join("nowhere").as_ref(),
        "--threshold".as_ref(),
        "1.5".as_ref(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("--threshold must be above 0 and at most 1, got 1.5"),
        "{}",
        stderr(&run)
    );
    assert!(!dir.join("nowhere").exists());

    // Another threshold than the index's.
    let run = dedup(&[
        out.as_ref(),
        "-o".as_ref(),
        result.as_ref(),
        "--threshold".as_ref(),
        "0.8".as_ref(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("manifest.json") && stderr(&run).contains("threshold 0.7"),
        "{}",
        stderr(&run)
    );

    // An index made with another signature version.
    let manifest = result.join("index/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["signature"] = "phash-dct64x8/lsh-32x16-key24/v0".into();
    std::fs::write(&manifest, value.to_string()).unwrap();
    let run = dedup(&[out.as_ref(), "-o".as_ref(), result.as_ref()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("phash-dct64x8/lsh-32x16-key24/v0")
            && stderr(&run).contains("new index"),
        "{}",
        stderr(&run)
    );
    std::fs::write(&manifest, text).unwrap();

    // An embedding index of another CLIP model.
    let by_embedding = dir.join("by-embedding");
    let args = [
        out.as_os_str(),
        "-o".as_ref(),
        by_embedding.as_ref(),
        "--by".as_ref(),
        "embedding".as_ref(),
    ];
    let run = dedup(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let manifest = by_embedding.join("index/manifest.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let ours = value["model"]["model_hash"].as_str().unwrap().to_string();
    value["model"]["model_hash"] = "sha256:another".into();
    std::fs::write(&manifest, value.to_string()).unwrap();
    let run = dedup(&args);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("sha256:another") && stderr(&run).contains(&ours),
        "{}",
        stderr(&run)
    );

    // check duplicate_of with a folder that is no index: exit 2 naming the key.
    let rules = pipeline(
        dir,
        "rules.json",
        &format!(
            r#"{{"rule_sets": [{{"name": "library", "rules": {{"duplicate_of": {{"index": {:?}}}}}}}]}}"#,
            out.display().to_string()
        ),
    );
    let check = framepipe()
        .args(["check", "--rules"])
        .arg(&rules)
        .arg(dir.join("one.mp4"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("rule_sets[0].rules.duplicate_of.index")
            && stderr(&check).contains("not a dedup index"),
        "{}",
        stderr(&check)
    );

    // An index another live process holds.
    std::fs::write(result.join("index/lock"), std::process::id().to_string()).unwrap();
    let run = dedup(&[out.as_ref(), "-o".as_ref(), result.as_ref()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains(&format!("held by process {}", std::process::id())),
        "{}",
        stderr(&run)
    );
    // A lock left by a process that is gone is taken over.
    std::fs::write(result.join("index/lock"), "999999999").unwrap();
    let run = dedup(&[out.as_ref(), "-o".as_ref(), result.as_ref()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(!result.join("index/lock").exists());

    // An unfinished output is skipped and named; a finished one beside it still counts.
    let unfinished = out.join("two");
    copy_dir(&output, &unfinished);
    std::fs::remove_file(unfinished.join(DONE_MARKER)).unwrap();
    let run = dedup(&[out.as_ref(), "-o".as_ref(), dir.join("fresh").as_ref()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("two") && stderr(&run).contains("unfinished"),
        "{}",
        stderr(&run)
    );
    assert!(
        stderr(&run).contains("1 clips of 1 outputs added"),
        "{}",
        stderr(&run)
    );

    // Finished, it holds the same clip ids as the first: refused, both named.
    std::fs::copy(output.join(DONE_MARKER), unfinished.join(DONE_MARKER)).unwrap();
    let run = dedup(&[out.as_ref(), "-o".as_ref(), dir.join("fresh2").as_ref()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("one_0000")
            && stderr(&run).contains("two")
            && stderr(&run).contains("unique"),
        "{}",
        stderr(&run)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
