//! The CLIP tokenizer against transformers' `CLIPTokenizer` (padding="max_length",
//! max_length=77, truncation=True) on the real vocabulary in ../shared/models/clip-tokenizer;
//! expected ids frozen by tests/fixtures/make_clip_fixture.py --tokenizer.
#[path = "../../../tests/common/shared.rs"]
mod shared;
use std::path::{Path, PathBuf};

use framepipe_torch::models::clip::ClipTokenizer;
use serde::Deserialize;
use tch::Device;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<i64>,
}

/// The real tokenizer, `../shared/models/clip-tokenizer` from the workspace root; None (with a
/// message) in a fresh clone without ../shared.
fn real_tokenizer_dir() -> Option<PathBuf> {
    let dir = shared::shared_model("clip-tokenizer")?;
    if dir.join("tokenizer.json").exists() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} has no tokenizer.json", dir.display());
        None
    }
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip-tokenizer-ids.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn ids_equal_transformers_clip_tokenizer() {
    let Some(dir) = real_tokenizer_dir() else {
        return;
    };
    let tokenizer = ClipTokenizer::from_folder(&dir, 77).unwrap();
    assert_eq!(
        tokenizer.pad_id(),
        49407,
        "<|endoftext|> pads, as tokenizer_config.json says"
    );
    let cases = fixture().cases;
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let got = tokenizer.encode(&texts).unwrap();
    let mut failures = Vec::new();
    for (case, ids) in cases.iter().zip(&got) {
        if *ids != case.ids {
            let at = ids
                .iter()
                .zip(&case.ids)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            failures.push(format!(
                "{:?}: first difference at {at}\n  expected {:?}\n  got      {:?}",
                case.text, case.ids, ids
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn rows_are_fixed_length_and_end_with_end_of_text() {
    let Some(dir) = real_tokenizer_dir() else {
        return;
    };
    let tokenizer = ClipTokenizer::from_folder(&dir, 77).unwrap();
    let long = "word ".repeat(200);
    let ids = tokenizer
        .input_ids(&["a photo of a cat", &long], Device::Cpu)
        .unwrap();
    assert_eq!(ids.size(), [2, 77]);
    let first: Vec<i64> = Vec::try_from(ids.get(0).narrow(0, 0, 8)).unwrap();
    assert_eq!(first, [49406, 320, 1125, 539, 320, 2368, 49407, 49407]);
    // Truncation keeps the end-of-text token last.
    assert_eq!(ids.int64_value(&[1, 76]), 49407);
    assert_eq!(ids.int64_value(&[1, 0]), 49406);
}

#[test]
fn missing_tokenizer_is_named() {
    let err = ClipTokenizer::from_folder(Path::new("/nonexistent/model"), 77)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/model/tokenizer.json"), "{err}");
}
