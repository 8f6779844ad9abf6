//! The libtorch library (`libframepipe_torch.so`): built next to the binary, linked so that CUDA
//! is found on a GPU machine (libtorch_cuda as a NEEDED entry), loadable, and not loaded at all
//! by runs that do not need it.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn library() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_framepipe"))
        .parent()
        .unwrap()
        .join("libframepipe_torch.so")
}

#[test]
fn devices_loads_libtorch_and_reports() {
    let out = framepipe().arg("devices").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["cuda_devices"].as_u64().is_some(), "{v}");
    assert_eq!(
        v["cuda_available"].as_bool().unwrap(),
        v["cuda_devices"].as_u64().unwrap() > 0
    );
    assert!(v["library"]
        .as_str()
        .unwrap()
        .ends_with("libframepipe_torch.so"));
}

#[test]
fn library_links_libtorch_cuda_when_libtorch_has_it() {
    let readelf = Command::new("readelf")
        .arg("-d")
        .arg(library())
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&readelf.stdout);
    assert!(
        dynamic.contains("RUNPATH"),
        "a RUNPATH to libtorch's folder: {dynamic}"
    );
    let runpath = dynamic.lines().find(|l| l.contains("RUNPATH")).unwrap();
    let dir = runpath.split('[').nth(1).unwrap().trim_end_matches(']');
    if Path::new(dir).join("libtorch_cuda.so").exists() {
        assert!(
            dynamic.contains("libtorch_cuda.so"),
            "libtorch_cuda.so must be NEEDED: {dynamic}"
        );
    }
}

#[test]
fn binary_does_not_load_libtorch_by_itself() {
    let readelf = Command::new("readelf")
        .arg("-d")
        .arg(env!("CARGO_BIN_EXE_framepipe"))
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&readelf.stdout);
    assert!(
        !dynamic.contains("libtorch"),
        "the binary must not link libtorch: {dynamic}"
    );
}

#[test]
fn missing_library_is_a_clear_error() {
    let out = framepipe()
        .arg("devices")
        .env("FRAMEPIPE_TORCH_LIB", "/nonexistent/lib.so")
        .output()
        .unwrap();
    // The env var is only the first place looked at; with the real library next to the binary
    // the command still works. Point at a file that is not a library to see the error path.
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libframepipe_torch.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let out = framepipe()
        .arg("devices")
        .env("FRAMEPIPE_TORCH_LIB", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot load") && stderr(&out).contains(fake.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}
