//! The `vae_*` requests behind `framepipe vae`: encode images to latents exactly as the pipeline
//! stores them, decode latents to PNG frames, and measure a round trip (PSNR, SSIM).
//!
//! Model folders: diffusers `AutoencoderKL` or `AutoencoderTiny` (`config.json` with its
//! `_class_name`), or TAESD's native pair (`*encoder*.safetensors` + `*decoder*.safetensors`,
//! e.g. taef2). Image sides must be multiples of 8 (the latent grid); other sizes are refused
//! with the size named, never silently padded or cropped.
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::frames::FrameLayout;
use crate::request::{inference_kind, model_and_device, ModelCache};
use crate::vae::kl::{AutoencoderKl, Tiling};
use crate::vae::tiny::TinyAutoencoder;

/// Boxed: the models are large and live once per request.
enum Vae {
    Kl(Box<AutoencoderKl>),
    Tiny(Box<TinyAutoencoder>),
}

fn find_native(folder: &Path, part: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.contains(part) && name.ends_with(".safetensors")
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

impl Vae {
    fn load(folder: &Path, device: Device) -> Result<Vae, String> {
        // fp32 also where a KL config's force_upcast asks (below).
        let kind = inference_kind(device);
        let config = folder.join("config.json");
        if config.is_file() {
            let text = std::fs::read_to_string(&config)
                .map_err(|e| format!("{}: {e}", config.display()))?;
            let class: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
            return match class["_class_name"].as_str() {
                Some("AutoencoderTiny") => TinyAutoencoder::load_diffusers(folder, device, kind)
                    .map(|m| Vae::Tiny(Box::new(m)))
                    .map_err(|e| e.to_string()),
                _ => {
                    let force_upcast = class["force_upcast"].as_bool().unwrap_or(true);
                    let kind = if force_upcast { Kind::Float } else { kind };
                    AutoencoderKl::load(folder, device, kind)
                        .map(|m| Vae::Kl(Box::new(m)))
                        .map_err(|e| e.to_string())
                }
            };
        }
        match (
            find_native(folder, "encoder"),
            find_native(folder, "decoder"),
        ) {
            (Some(enc), Some(dec)) => TinyAutoencoder::load_native(&enc, &dec, device, kind)
                .map(|m| Vae::Tiny(Box::new(m)))
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "{}: not a VAE folder (no config.json, no *encoder*/*decoder* .safetensors pair)",
                folder.display()
            )),
        }
    }

    /// Images in [0, 1], [N, 3, H, W] → latents as the pipeline stores them.
    fn encode(&self, x01: &Tensor) -> Result<Tensor, String> {
        match self {
            Vae::Kl(m) => m
                .encode(&to_kl_range(x01)?, None)
                .map_err(|e| e.to_string()),
            Vae::Tiny(m) => m.encode(x01).map_err(|e| e.to_string()),
        }
    }

    /// Latents → images in [0, 1].
    fn decode(&self, latents: &Tensor) -> Result<Tensor, String> {
        let x = match self {
            Vae::Kl(m) => m
                .decode(latents)
                .map_err(|e| e.to_string())?
                .f_add_scalar(1.0)
                .and_then(|t| t.f_div_scalar(2.0))
                .map_err(|e| e.to_string())?,
            Vae::Tiny(m) => m.decode(latents).map_err(|e| e.to_string())?,
        };
        x.f_clamp(0.0, 1.0).map_err(|e| e.to_string())
    }
}

fn load_images(paths: &[PathBuf], device: Device) -> Result<Tensor, String> {
    let mut frames = Vec::new();
    let mut size = None;
    for path in paths {
        let img = image::open(path)
            .map_err(|e| format!("{}: cannot read image: {e}", path.display()))?
            .to_rgb8();
        let (w, h) = (img.width(), img.height());
        if w % 8 != 0 || h % 8 != 0 {
            return Err(format!(
                "{}: {w}x{h}: both sides must be multiples of 8 (the latent grid)",
                path.display()
            ));
        }
        if *size.get_or_insert((w, h)) != (w, h) {
            return Err(format!(
                "{}: {w}x{h}: all images of one call must have the same size",
                path.display()
            ));
        }
        frames.push(
            Tensor::from_slice(img.as_raw())
                .view([i64::from(h), i64::from(w), 3])
                .permute([2, 0, 1]),
        );
    }
    Ok(Tensor::stack(&frames, 0)
        .to_device(device)
        .to_kind(Kind::Float)
        / 255.0)
}

fn paths(v: &Value) -> Vec<PathBuf> {
    v.as_array().map_or(Vec::new(), |a| {
        a.iter()
            .filter_map(|p| p.as_str())
            .map(PathBuf::from)
            .collect()
    })
}

/// PSNR (dB) and SSIM (Gaussian 11x11, sigma 1.5, on luma) of `b` against `a`, both [3, H, W] in [0, 1].
fn psnr_ssim(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let mse = (a - b).square().mean(Kind::Double).double_value(&[]);
    let psnr = if mse > 0.0 {
        10.0 * (1.0 / mse).log10()
    } else {
        f64::INFINITY
    };
    let luma = |x: &Tensor| {
        let w = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
            .to_device(x.device())
            .view([3, 1, 1]);
        (x.to_kind(Kind::Float) * w)
            .sum_dim_intlist([0i64].as_slice(), true, Kind::Float)
            .unsqueeze(0)
    };
    let g: Vec<f32> = (0..11)
        .map(|i| (-((i as f32 - 5.0).powi(2)) / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let g = Tensor::from_slice(&g);
    let g = &g / g.sum(Kind::Float);
    let window = g
        .view([11, 1])
        .matmul(&g.view([1, 11]))
        .view([1, 1, 11, 11])
        .to_device(a.device());
    let blur = |x: &Tensor| x.conv2d(&window, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    let (x, y) = (luma(a), luma(b));
    let (mx, my) = (blur(&x), blur(&y));
    let sxx = blur(&(&x * &x)) - &mx * &mx;
    let syy = blur(&(&y * &y)) - &my * &my;
    let sxy = blur(&(&x * &y)) - &mx * &my;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let ssim = ((&mx * &my * 2.0 + c1) * (sxy * 2.0 + c2))
        / ((mx.square() + my.square() + c1) * (sxx + syy + c2));
    (psnr, ssim.mean(Kind::Double).double_value(&[]))
}

/// `{"op": "vae_encode", "model", "device", "images": [..], "out": FILE, "dtype": "f32"|"f16", "check": bool}`
pub fn encode(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let out = PathBuf::from(request["out"].as_str().ok_or("\"out\" is required")?);
    let kind = match request["dtype"].as_str().unwrap_or("f32") {
        "f32" => Kind::Float,
        "f16" => Kind::Half,
        other => return Err(format!("dtype {other:?}: f32 or f16")),
    };
    let images = paths(&request["images"]);
    if images.is_empty() {
        return Err("give at least one image".into());
    }
    let vae = Vae::load(&folder, device)?;
    let x = load_images(&images, device)?;
    let latents = tch::no_grad(|| vae.encode(&x.to_kind(model_kind(&vae))))?;
    let stored = latents.to_kind(kind).to_device(Device::Cpu).contiguous();
    Tensor::write_safetensors(&[("latents", &stored)], &out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut reply = json!({ "out": out.display().to_string(), "shape": stored.size(), "dtype": request["dtype"].as_str().unwrap_or("f32") });
    if request["check"].as_bool().unwrap_or(false) {
        let decoded = tch::no_grad(|| vae.decode(&latents))?.to_kind(Kind::Float);
        let checks: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (psnr, ssim) = psnr_ssim(&x.get(i as i64), &decoded.get(i as i64));
                json!({ "image": p.display().to_string(), "psnr_db": psnr, "ssim": ssim })
            })
            .collect();
        reply["check"] = json!(checks);
    }
    Ok(reply)
}

fn model_kind(vae: &Vae) -> Kind {
    match vae {
        Vae::Kl(m) => m.kind(),
        Vae::Tiny(m) => m.kind(),
    }
}

/// `{"op": "vae_decode", "model", "device", "latents": FILE, "out_dir": DIR}` → PNG per frame.
pub fn decode(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let file = PathBuf::from(
        request["latents"]
            .as_str()
            .ok_or("\"latents\" is required")?,
    );
    let out_dir = PathBuf::from(
        request["out_dir"]
            .as_str()
            .ok_or("\"out_dir\" is required")?,
    );
    let vae = Vae::load(&folder, device)?;
    let tensors =
        Tensor::read_safetensors(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let latents = tensors
        .into_iter()
        .find(|(name, _)| name == "latents")
        .map(|(_, t)| t)
        .ok_or_else(|| format!("{}: no tensor named latents", file.display()))?;
    if latents.dim() != 4 {
        return Err(format!(
            "{}: latents have shape {:?}, expected [N, C, h, w]",
            file.display(),
            latents.size()
        ));
    }
    let images = tch::no_grad(|| vae.decode(&latents.to_device(device).to_kind(model_kind(&vae))))?;
    let images = (images.to_kind(Kind::Float) * 255.0)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .to_device(Device::Cpu);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let (n, h, w) = (images.size()[0], images.size()[2], images.size()[3]);
    let mut files = Vec::new();
    for i in 0..n {
        let hwc = images.get(i).permute([1, 2, 0]).contiguous();
        let bytes = Vec::<u8>::try_from(hwc.view([-1])).map_err(|e| e.to_string())?;
        let path = out_dir.join(format!("{i:06}.png"));
        image::RgbImage::from_raw(w as u32, h as u32, bytes)
            .ok_or("decoded image has the wrong size")?
            .save(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path.display().to_string());
    }
    Ok(json!({ "files": files, "width": w, "height": h }))
}

impl Vae {
    /// `(scaling_factor, shift_factor)` applied to the stored latents (1, none for TAESD).
    fn scaling(&self) -> (f64, Option<f64>) {
        match self {
            Vae::Kl(m) => (m.config().scaling_factor, m.config().shift_factor),
            Vae::Tiny(_) => (1.0, None),
        }
    }
}

/// Runs `f` with the VAE of `folder` on `device`, loaded once for the process.
fn with_vae<T>(
    folder: &Path,
    device: Device,
    f: impl FnOnce(&Vae) -> Result<T, String>,
) -> Result<T, String> {
    static MODELS: ModelCache<Vae> = ModelCache::new();
    MODELS.with(folder, device, || Vae::load(folder, device), f)
}

/// `{"op": "vae_info", "model", "device"}`: loads the model (a bad folder fails here, before
/// decoding) and says how it scales latents.
pub fn info(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    with_vae(&folder, device, |vae| {
        let (scale, shift) = vae.scaling();
        let (channels, downsampling, range) = match vae {
            Vae::Kl(m) => (
                m.config().latent_channels,
                m.config().downsampling(),
                "[-1, 1]",
            ),
            // The TAESD family always shrinks by 8 (three stride-2 convolutions).
            Vae::Tiny(m) => (m.latent_channels(), 8, "[0, 1]"),
        };
        Ok(json!({
            "class": match vae { Vae::Kl(_) => "AutoencoderKL", Vae::Tiny(_) => "TAESD" },
            "scaling_factor": scale,
            "shift_factor": shift,
            "input_range": range,
            "latent_channels": channels,
            "downsampling": downsampling,
        }))
    })
}

/// Encodes `n` RGB frames (`height` x `width` x 3 bytes each) into `out` (f32 latents, row-major
/// [n, C, h, w]); returns the latent shape per frame. Optional request fields: `tiling` (bool,
/// AutoencoderKL only), `sample_seed` with `frame_index` (one per frame: frame `i` is sampled
/// with seed `sample_seed + frame_index[i]`; AutoencoderKL only).
pub fn encode_frames(request: &Value, rgb: &[u8], out: &mut [f32]) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let layout = frame_layout(request)?;
    let options = EncodeOptions::from_request(request, layout.n)?;
    with_vae(&folder, device, |vae| {
        let latents = crate::canvas::with_frames(request, &layout, rgb, device, |raw| {
            encode_uploaded(vae, &layout, raw, &options)
        })?;
        crate::frames::copy_into(&latents, out)?;
        let size = latents.size();
        Ok(json!({ "n": layout.n, "shape_per_frame": &size[1..] }))
    })
}

/// The request's frame layout, whose picture must fall on the latent grid.
fn frame_layout(request: &Value) -> Result<FrameLayout, String> {
    let layout = FrameLayout::from_request(request)?;
    let (w, h) = layout.picture_size();
    if h % 8 != 0 || w % 8 != 0 {
        return Err(format!(
            "{w}x{h}: both sides must be multiples of 8 (the latent grid)"
        ));
    }
    Ok(layout)
}

/// The vae stage's work on frames already on the device: colour conversion, scaling to the
/// model's input, the encoder, and the one copy back of the batch's latents (f32 on the CPU).
fn encode_uploaded(
    vae: &Vae,
    layout: &FrameLayout,
    raw: &Tensor,
    options: &EncodeOptions,
) -> Result<Tensor, String> {
    let device = raw.device();
    let mut x = layout
        .to_rgb(raw)?
        .f_to_kind(model_kind(vae))
        .and_then(|t| t.f_div_scalar(255.0))
        .map_err(|e| e.to_string())?;
    if device.is_cuda() {
        // RGB24 frames arrive channels-last, and a convolution keeps its input's layout, so
        // the whole encoder would run NHWC: on the H100 that made PyTorch's SD VAE encoder
        // 65 ms a frame instead of 44 (../shared/docs/gpu.md; GroupNorm wants NCHW).
        x = x.f_contiguous().map_err(|e| e.to_string())?;
    }
    crate::frames::to_host_f32(&tch::no_grad(|| vae.encode_with(&x, options))?)
}

/// `bench_model` for the vae stage: [`encode_uploaded`] on random frames already on the device,
/// call after call, or with `model_only` the encoder alone on a random NCHW batch in the
/// model's precision (what diffusers' benchmarks time). See [`crate::bench_op`].
pub fn bench(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let layout = frame_layout(request)?;
    let options = EncodeOptions::from_request(request, layout.n)?;
    with_vae(&folder, device, |vae| {
        if crate::bench_op::model_only(request) {
            let (w, h) = layout.picture_size();
            let x01 = Tensor::f_rand([layout.n, 3, h, w], (model_kind(vae), device))
                .map_err(|e| e.to_string())?;
            return crate::bench_op::time_calls(request, device, layout.n, || {
                crate::frames::to_host_f32(&tch::no_grad(|| vae.encode_with(&x01, &options))?)
                    .map(drop)
            });
        }
        let raw = crate::bench_op::random_frames(&layout, device)?;
        crate::bench_op::time_calls(request, device, layout.n, || {
            encode_uploaded(vae, &layout, &raw, &options).map(drop)
        })
    })
}

/// Images in [0, 1] → AutoencoderKL's [-1, 1], failing with libtorch's error (out of memory
/// included) instead of panicking as tch's operators do.
fn to_kl_range(x01: &Tensor) -> Result<Tensor, String> {
    x01.f_mul_scalar(2.0)
        .and_then(|t| t.f_sub_scalar(1.0))
        .map_err(|e| e.to_string())
}

/// How a frame batch is encoded beyond the default (whole frames, posterior mean).
#[derive(Debug, Default)]
struct EncodeOptions {
    tiling: bool,
    /// One seed per frame when sampling.
    seeds: Option<Vec<u64>>,
}

impl EncodeOptions {
    fn from_request(request: &Value, n: i64) -> Result<Self, String> {
        let seeds = match request["sample_seed"].as_u64() {
            None => None,
            Some(seed) => {
                let index: Vec<u64> = request["frame_index"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                if index.len() as i64 != n {
                    return Err(format!(
                        "sample_seed needs one frame_index per frame ({} for {n} frames)",
                        index.len()
                    ));
                }
                Some(index.iter().map(|i| seed.wrapping_add(*i)).collect())
            }
        };
        Ok(Self {
            tiling: request["tiling"].as_bool().unwrap_or(false),
            seeds,
        })
    }
}

impl Vae {
    /// [`Vae::encode`] with tiling and per-frame sampling, which only AutoencoderKL has.
    fn encode_with(&self, x01: &Tensor, options: &EncodeOptions) -> Result<Tensor, String> {
        match self {
            Vae::Kl(m) if options.tiling || options.seeds.is_some() => {
                let x = to_kl_range(x01)?;
                let tiling = options.tiling.then(|| Tiling::for_config(m.config()));
                match (&options.seeds, tiling) {
                    (Some(seeds), tiling) => m.encode_sampled_per_frame(&x, tiling, seeds),
                    (None, Some(tiling)) => m.encode_tiled(&x, tiling, None),
                    (None, None) => m.encode(&x, None),
                }
                .map_err(|e| e.to_string())
            }
            Vae::Tiny(_) if options.tiling => {
                Err("tiling is for AutoencoderKL models; TAESD models encode whole frames".into())
            }
            Vae::Tiny(_) if options.seeds.is_some() => Err(
                "sample_seed is for AutoencoderKL models; TAESD latents are deterministic".into(),
            ),
            _ => self.encode(x01),
        }
    }
}

/// Most frames per call a plan chooses: beyond this a batch no longer speeds an encoder up,
/// and the frames a stage holds while collecting a batch cost host memory.
const PLAN_MAX_BATCH: i64 = 64;
/// The share of usable device memory a plan fills: the other stages (CLIP, the colour
/// conversion of the next batch) and allocator fragmentation need the rest.
const PLAN_MEMORY_SHARE: f64 = 0.8;

/// `{"op": "vae_plan_batch", "model", "device", "height", "width", "tiling"}` (CUDA only): the
/// batch size that fits the device's free memory. Encodes one and then two blank frames of that
/// size with the request's options and measures the allocator's peak for each: the difference
/// is what one more frame costs, the rest is fixed (cuDNN workspace and the like). Replies
/// `{"batch_size", "per_frame_bytes", "fixed_bytes", "usable_bytes"}`.
pub fn plan_batch(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    if !device.is_cuda() {
        return Err(
            "vae_plan_batch measures CUDA memory; the CPU has no device memory to plan for".into(),
        );
    }
    let (h, w) = (
        request["height"].as_i64().filter(|v| *v > 0 && v % 8 == 0),
        request["width"].as_i64().filter(|v| *v > 0 && v % 8 == 0),
    );
    let (Some(h), Some(w)) = (h, w) else {
        return Err("\"height\" and \"width\" must be positive multiples of 8".into());
    };
    let options = EncodeOptions {
        tiling: request["tiling"].as_bool().unwrap_or(false),
        seeds: None,
    };
    with_vae(&folder, device, |vae| {
        let kind = model_kind(vae);
        let peak_for = |n: i64| -> Result<u64, String> {
            crate::cuda::sync_thread_stream(device)?;
            let before = crate::cuda::memory(device)?.allocated;
            crate::cuda::reset_peak(device)?;
            {
                let x = Tensor::f_zeros([n, 3, h, w], (kind, device)).map_err(|e| e.to_string())?;
                let latents = tch::no_grad(|| vae.encode_with(&x, &options))?;
                drop(latents);
            }
            crate::cuda::sync_thread_stream(device)?;
            Ok(crate::cuda::memory(device)?
                .peak_allocated
                .saturating_sub(before))
        };
        let one = peak_for(1)?;
        let two = peak_for(2)?;
        let per_frame = two.saturating_sub(one).max(1);
        let fixed = one.saturating_sub(per_frame);
        let usable = crate::cuda::memory(device)?.usable();
        let budget = (usable as f64 * PLAN_MEMORY_SHARE) as u64;
        let batch = (budget.saturating_sub(fixed) / per_frame).clamp(1, PLAN_MAX_BATCH as u64);
        Ok(json!({
            "batch_size": batch,
            "per_frame_bytes": per_frame,
            "fixed_bytes": fixed,
            "usable_bytes": usable,
        }))
    })
}
