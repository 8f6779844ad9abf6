//! GroupNorm+SiLU on the CPU: libtorch's `group_norm` then SiLU (the baseline) against the split
//! form (`GroupNormPath::Split`, the CUDA default), in the same process on the same machine,
//! medians of interleaved rounds: one GroupNorm(32)+SiLU over 128x360x640 (the SD VAE's second
//! resolution level at 720p) and the whole SD VAE encoder (128/256/512/512, zero weights) at
//! 256x256, fp32 and bf16, NCHW and channels-last. It decides the CPU defaults; the CUDA side
//! is timed by scripts/gpu/check.sh (`FRAMEPIPE_GROUP_NORM=native` against the default).
//! Run: `cargo bench -p framepipe-torch --bench group_norm`.
use std::time::Instant;

use framepipe_torch::models::vae::kl::{AutoencoderKl, KlConfig};
use framepipe_torch::models::vae::{GroupNorm, GroupNormPath};
use tch::{Device, Kind, Tensor};

/// Puts a tensor in a memory layout (same values).
type Arrange = fn(Tensor) -> Tensor;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds per call for each path, rounds interleaved so drift hits both alike.
fn compare(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (mut native, mut split) = (Vec::new(), Vec::new());
    for path in [GroupNormPath::Native, GroupNormPath::Split] {
        GroupNormPath::force(Some(path));
        f(); // warm-up
    }
    for _ in 0..rounds {
        for (path, times) in [
            (GroupNormPath::Native, &mut native),
            (GroupNormPath::Split, &mut split),
        ] {
            GroupNormPath::force(Some(path));
            let start = Instant::now();
            f();
            times.push(start.elapsed().as_secs_f64());
        }
    }
    GroupNormPath::force(None);
    (median(native), median(split))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("FRAMEPIPE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    tch::set_num_threads(threads as i32);
    println!("GroupNorm+SiLU on the CPU, {threads} threads, medians of {rounds} (split / native time; < 1 means split is faster):");
    // NCHW, as `framepipe vae encode` gives images; channels-last, as the pipeline's RGB24
    // frames arrive (where libtorch's kernel also loses precision, see GroupNormPath).
    let layouts: [(&str, Arrange); 2] = [
        ("NCHW", |t| t),
        ("channels-last", |t| {
            t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
        }),
    ];
    for kind in [Kind::Float, Kind::BFloat16] {
        let vae = AutoencoderKl::new(KlConfig::stable_diffusion(), Device::Cpu, kind)
            .expect("SD VAE builds");
        for (layout, arrange) in layouts {
            let x = arrange(Tensor::randn([1, 3, 256, 256], (kind, Device::Cpu)));
            let (native, split) = compare(rounds, || {
                tch::no_grad(|| drop(vae.encode(&x, None).expect("encode")));
            });
            println!(
                "  SD VAE encoder 256x256 {kind:?} {layout}: native {:.1} ms, split {:.1} ms, ratio {:.3}",
                native * 1e3,
                split * 1e3,
                split / native
            );
        }
    }
    for kind in [Kind::Float, Kind::BFloat16] {
        let norm = GroupNorm::from_parts(
            32,
            Tensor::rand([128], (kind, Device::Cpu)) + 0.5,
            Tensor::randn([128], (kind, Device::Cpu)),
            1e-6,
        )
        .expect("GroupNorm");
        for (layout, arrange) in layouts {
            let x = arrange(Tensor::randn([1, 128, 360, 640], (kind, Device::Cpu)));
            let (native, split) =
                compare(rounds * 4, || drop(norm.forward_silu(&x).expect("norm")));
            println!(
                "  GroupNorm(32)+SiLU 128x360x640 {kind:?} {layout}: native {:.2} ms, split {:.2} ms, ratio {:.3}",
                native * 1e3,
                split * 1e3,
                split / native
            );
        }
    }
}
