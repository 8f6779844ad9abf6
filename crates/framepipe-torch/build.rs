//! Link flags for libtorch (through tch/torch-sys) of `libframepipe_torch.so`, and the small C++
//! shim (`src/runtime/cuda_shim.cpp`) for the CUDA calls tch does not bind.
//!
//! Nothing in our binary references a symbol of `libtorch_cuda.so`, so the linker's `--as-needed`
//! would drop it and CUDA would look absent on a GPU machine (../shared/docs/gpu.md). When the
//! libtorch lib dir has it, link it explicitly, and embed a RUNPATH to that dir so `cargo run`,
//! the tests and a user's shell need no `LD_LIBRARY_PATH`.
use std::path::{Path, PathBuf};
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
    build_cuda_shim(&lib);
    let lib = lib.display();
    println!("cargo:rustc-link-search=native={lib}");
    // `rustc-link-arg` reaches every linked target of this crate: the cdylib that `framepipe`
    // loads and this crate's own test harness.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&format!("{lib}/libtorch_cuda.so")).exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The include folders for the CUDA runtime headers: `CUDA_HOME`, the NVIDIA wheels beside
/// PyPI's torch (`site-packages/nvidia/cu13/include`), or /usr/local/cuda. The wheels leave out
/// `crt/host_config.h` (it belongs to nvcc), which `cuda_runtime.h` includes; Triton, which
/// PyPI's torch installs, carries a full CUDA header set, whose `crt/` fills that gap.
fn cuda_include_dirs(torch_lib: &Path) -> Option<Vec<PathBuf>> {
    let site = torch_lib.parent().and_then(Path::parent);
    let mut candidates = Vec::new();
    if let Ok(home) = std::env::var("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    if let Some(site) = site {
        if let Ok(entries) = std::fs::read_dir(site.join("nvidia")) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            candidates.extend(dirs.into_iter().map(|d| d.join("include")));
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    let runtime = candidates
        .into_iter()
        .find(|d| d.join("cuda_runtime_api.h").is_file())?;
    let has_crt = |d: &Path| d.join("crt/host_config.h").is_file();
    if has_crt(&runtime) {
        return Some(vec![runtime]);
    }
    let crt = site
        .map(|s| s.join("triton/backends/nvidia/include"))
        .filter(|d| has_crt(d))?;
    Some(vec![runtime, crt])
}

/// Compiles `src/runtime/cuda_shim.cpp`; with CUDA support when libtorch has `libc10_cuda.so` and the
/// CUDA headers are found, else as stubs that say so (a CPU-only libtorch).
fn build_cuda_shim(torch_lib: &Path) {
    println!("cargo:rerun-if-changed=src/runtime/cuda_shim.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("src/runtime/cuda_shim.cpp")
        .warnings(false);
    let torch_include = torch_lib.parent().map(|p| p.join("include"));
    let cuda_include = cuda_include_dirs(torch_lib);
    match (torch_include, cuda_include) {
        (Some(torch), Some(cuda))
            if torch_lib.join("libc10_cuda.so").exists() && torch.join("c10").is_dir() =>
        {
            build.include(torch).includes(cuda).define("FRAMEPIPE_WITH_CUDA", None)
                // libtorch's own ABI (PyPI wheels since 2.8 use the C++11 one).
                .define("_GLIBCXX_USE_CXX11_ABI", "1");
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
            println!("cargo:rustc-link-lib=dylib=c10");
        }
        _ => println!(
            "cargo:warning=CUDA headers or libc10_cuda.so not found: the CUDA shim is built without CUDA (no per-stage streams or memory queries)"
        ),
    }
    build.compile("framepipe_cuda_shim");
}
