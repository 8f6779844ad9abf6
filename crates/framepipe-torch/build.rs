//! Link flags for libtorch (through tch/torch-sys) of `libframepipe_torch.so`.
//!
//! Nothing in our binary references a symbol of `libtorch_cuda.so`, so the linker's `--as-needed`
//! would drop it and CUDA would look absent on a GPU machine (../shared/docs/gpu.md). When the
//! libtorch lib dir has it, link it explicitly, and embed a RUNPATH to that dir so `cargo run`,
//! the tests and a user's shell need no `LD_LIBRARY_PATH`.
use std::path::PathBuf;
use std::process::Command;

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LIBTORCH_LIB") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(dir) = std::env::var("LIBTORCH") {
        return Some(PathBuf::from(dir).join("lib"));
    }
    // LIBTORCH_USE_PYTORCH=1: libtorch is the one inside the active Python's torch package.
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Some(lib) = libtorch_lib_dir() else {
        println!("cargo:warning=libtorch lib dir not found; relying on the default search path");
        return;
    };
    let lib = lib.display();
    println!("cargo:rustc-link-search=native={lib}");
    // `rustc-link-arg` reaches every linked target of this crate: the cdylib that `framepipe`
    // loads and this crate's own test harness.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&format!("{lib}/libtorch_cuda.so")).exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
