//! The `vae_*` requests behind `framepipe vae`: encode images to latents exactly as the pipeline
//! stores them, decode latents to PNG frames, and measure a round trip (PSNR, SSIM).
//!
//! Model folders: diffusers `AutoencoderKL` or `AutoencoderTiny` (`config.json` with its
//! `_class_name`), or TAESD's native pair (`*encoder*.safetensors` + `*decoder*.safetensors`,
//! e.g. taef2). Image sides must be multiples of 8 (the latent grid); other sizes are refused
//! with the size named, never silently padded or cropped.
use std::path::{Path, PathBuf};

use framepipe_proto::ops::{
    BenchModel, BenchReply, Encoded, InputRange, LatentDtype, RoundTrip, Sampling, VaeBatchPlan,
    VaeClass, VaeDecodeLatents, VaeDecodedFiles, VaeEncodeFrames, VaeEncodeImages,
    VaeEncodeImagesReply, VaeFacts, VaeInfo, VaePlanBatch,
};
use framepipe_proto::TorchError;
use tch::{Device, Kind, Tensor};

use crate::models::vae::kl::{AutoencoderKl, Tiling};
use crate::models::vae::tiny::TinyAutoencoder;
use crate::models::vae::VaeError;
use crate::runtime::frames::{torch_error, Batch};
use crate::runtime::models::{inference_kind, tch_device, ModelCache};

/// Config and weight errors name a bad model folder; the rest are the input's or libtorch's.
impl From<VaeError> for TorchError {
    fn from(e: VaeError) -> TorchError {
        match e {
            VaeError::Config { .. } | VaeError::Weights(_) => TorchError::bad_model(e.to_string()),
            VaeError::Input(_) => TorchError::bad_input(e.to_string()),
            VaeError::Torch { .. } => TorchError::from_libtorch(e.to_string()),
        }
    }
}

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
    fn load(folder: &Path, device: Device) -> Result<Vae, TorchError> {
        // fp32 also where a KL config's force_upcast asks (below).
        let kind = inference_kind(device);
        let config = folder.join("config.json");
        if config.is_file() {
            let bad = |e: &dyn std::fmt::Display| {
                TorchError::bad_model(format!("{}: {e}", config.display()))
            };
            let text = std::fs::read_to_string(&config).map_err(|e| bad(&e))?;
            let class: ConfigClass = serde_json::from_str(&text).map_err(|e| bad(&e))?;
            return Ok(match class.class_name.as_deref() {
                Some("AutoencoderTiny") => Vae::Tiny(Box::new(TinyAutoencoder::load_diffusers(
                    folder, device, kind,
                )?)),
                _ => {
                    let kind = if class.force_upcast.unwrap_or(true) {
                        Kind::Float
                    } else {
                        kind
                    };
                    Vae::Kl(Box::new(AutoencoderKl::load(folder, device, kind)?))
                }
            });
        }
        match (
            find_native(folder, "encoder"),
            find_native(folder, "decoder"),
        ) {
            (Some(enc), Some(dec)) => Ok(Vae::Tiny(Box::new(TinyAutoencoder::load_native(
                &enc, &dec, device, kind,
            )?))),
            _ => Err(TorchError::bad_model(format!(
                "{}: not a VAE folder (no config.json, no *encoder*/*decoder* .safetensors pair)",
                folder.display()
            ))),
        }
    }

    /// Images in [0, 1], [N, 3, H, W] → latents as the pipeline stores them.
    fn encode(&self, x01: &Tensor) -> Result<Tensor, TorchError> {
        Ok(match self {
            Vae::Kl(m) => m.encode(&to_kl_range(x01)?, None)?,
            Vae::Tiny(m) => m.encode(x01)?,
        })
    }

    /// Latents → images in [0, 1].
    fn decode(&self, latents: &Tensor) -> Result<Tensor, TorchError> {
        let x = match self {
            Vae::Kl(m) => m
                .decode(latents)?
                .f_add_scalar(1.0)
                .and_then(|t| t.f_div_scalar(2.0))
                .map_err(torch_error)?,
            Vae::Tiny(m) => m.decode(latents)?,
        };
        x.f_clamp(0.0, 1.0).map_err(torch_error)
    }
}

/// The two keys of a diffusers `config.json` that choose the model class and its precision.
#[derive(serde::Deserialize)]
struct ConfigClass {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
    force_upcast: Option<bool>,
}

fn load_images(paths: &[PathBuf], device: Device) -> Result<Tensor, TorchError> {
    let mut frames = Vec::new();
    let mut size = None;
    for path in paths {
        let img = image::open(path)
            .map_err(|e| {
                TorchError::bad_input(format!("{}: cannot read image: {e}", path.display()))
            })?
            .to_rgb8();
        let (w, h) = (img.width(), img.height());
        if w % 8 != 0 || h % 8 != 0 {
            return Err(TorchError::bad_input(format!(
                "{}: {w}x{h}: both sides must be multiples of 8 (the latent grid)",
                path.display()
            )));
        }
        if *size.get_or_insert((w, h)) != (w, h) {
            return Err(TorchError::bad_input(format!(
                "{}: {w}x{h}: all images of one call must have the same size",
                path.display()
            )));
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

/// `framepipe vae encode IMAGES`: latents of same-size images into one safetensors file,
/// with `check` also decoded again and measured (PSNR, SSIM) per image.
pub fn encode_images(op: &VaeEncodeImages) -> Result<VaeEncodeImagesReply, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let kind = match op.dtype {
        LatentDtype::F32 => Kind::Float,
        LatentDtype::F16 => Kind::Half,
    };
    if op.images.is_empty() {
        return Err(TorchError::bad_input("give at least one image"));
    }
    let vae = Vae::load(folder, device)?;
    let x = load_images(&op.images, device)?;
    let latents = tch::no_grad(|| vae.encode(&x.to_kind(model_kind(&vae))))?;
    let stored = latents.to_kind(kind).to_device(Device::Cpu).contiguous();
    Tensor::write_safetensors(&[("latents", &stored)], &op.out)
        .map_err(|e| TorchError::bad_input(format!("{}: {e}", op.out.display())))?;
    let check = if op.check {
        let decoded = tch::no_grad(|| vae.decode(&latents))?.to_kind(Kind::Float);
        Some(
            op.images
                .iter()
                .enumerate()
                .map(|(i, image)| {
                    let (psnr_db, ssim) = psnr_ssim(&x.get(i as i64), &decoded.get(i as i64));
                    RoundTrip {
                        image: image.clone(),
                        psnr_db,
                        ssim,
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(VaeEncodeImagesReply {
        out: op.out.clone(),
        shape: stored.size(),
        dtype: op.dtype,
        check,
    })
}

fn model_kind(vae: &Vae) -> Kind {
    match vae {
        Vae::Kl(m) => m.kind(),
        Vae::Tiny(m) => m.kind(),
    }
}

/// `framepipe vae decode`: a latents file (`latents` [N, C, h, w]) to one PNG per frame.
pub fn decode_latents(op: &VaeDecodeLatents) -> Result<VaeDecodedFiles, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let file = &op.latents;
    let bad = |m: String| TorchError::bad_input(format!("{}: {m}", file.display()));
    let vae = Vae::load(folder, device)?;
    let tensors = Tensor::read_safetensors(file).map_err(|e| bad(e.to_string()))?;
    let latents = tensors
        .into_iter()
        .find(|(name, _)| name == "latents")
        .map(|(_, t)| t)
        .ok_or_else(|| bad("no tensor named latents".into()))?;
    if latents.dim() != 4 {
        return Err(bad(format!(
            "latents have shape {:?}, expected [N, C, h, w]",
            latents.size()
        )));
    }
    let images = tch::no_grad(|| vae.decode(&latents.to_device(device).to_kind(model_kind(&vae))))?;
    let images = (images.to_kind(Kind::Float) * 255.0)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .to_device(Device::Cpu);
    let out_dir = &op.out_dir;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| TorchError::bad_input(format!("{}: {e}", out_dir.display())))?;
    let (n, h, w) = (images.size()[0], images.size()[2], images.size()[3]);
    let mut files = Vec::new();
    for i in 0..n {
        let hwc = images.get(i).permute([1, 2, 0]).contiguous();
        let bytes = Vec::<u8>::try_from(hwc.view([-1])).map_err(torch_error)?;
        let path = out_dir.join(format!("{i:06}.png"));
        image::RgbImage::from_raw(w as u32, h as u32, bytes)
            .ok_or_else(|| TorchError::from_libtorch("decoded image has the wrong size"))?
            .save(&path)
            .map_err(|e| TorchError::bad_input(format!("{}: {e}", path.display())))?;
        files.push(path);
    }
    Ok(VaeDecodedFiles {
        files,
        width: w,
        height: h,
    })
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
    f: impl FnOnce(&Vae) -> Result<T, TorchError>,
) -> Result<T, TorchError> {
    static MODELS: ModelCache<Vae> = ModelCache::new();
    MODELS.with(folder, device, || Vae::load(folder, device), f)
}

/// Loads the model (a bad folder fails here, before decoding) and says how it scales latents.
pub fn info(op: &VaeInfo) -> Result<VaeFacts, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    with_vae(folder, device, |vae| {
        let (scaling_factor, shift_factor) = vae.scaling();
        Ok(match vae {
            Vae::Kl(m) => VaeFacts {
                class: VaeClass::AutoencoderKL,
                scaling_factor,
                shift_factor,
                input_range: InputRange::MinusOneToOne,
                latent_channels: m.config().latent_channels,
                downsampling: m.config().downsampling(),
            },
            // The TAESD family always shrinks by 8 (three stride-2 convolutions).
            Vae::Tiny(m) => VaeFacts {
                class: VaeClass::Taesd,
                scaling_factor,
                shift_factor,
                input_range: InputRange::ZeroToOne,
                latent_channels: m.latent_channels(),
                downsampling: 8,
            },
        })
    })
}

/// Encodes frames into `out` (f32 latents, row-major [n, C, h, w]); returns the latent shape
/// per frame. Tiling and per-frame sampling (frame `i` sampled with seed `seed +
/// frame_index[i]`) are for AutoencoderKL models only.
pub fn encode_frames(
    op: &VaeEncodeFrames,
    rgb: &[u8],
    out: &mut [f32],
) -> Result<Encoded, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let batch = on_latent_grid(Batch::new(&op.frames)?)?;
    let options = EncodeOptions::of(op.tiling, op.sampling.as_ref(), batch.n)?;
    with_vae(folder, device, |vae| {
        let latents =
            crate::runtime::canvas::with_frames(&op.frames, &batch, rgb, device, |raw| {
                encode_uploaded(vae, &batch, raw, &options)
            })?;
        crate::runtime::frames::copy_into(&latents, out)?;
        let size = latents.size();
        Ok(Encoded {
            n: op.frames.n,
            shape_per_frame: [size[1], size[2], size[3]],
        })
    })
}

/// `batch`, whose picture must fall on the latent grid.
fn on_latent_grid(batch: Batch) -> Result<Batch, TorchError> {
    let (w, h) = batch.picture_size();
    if h % 8 != 0 || w % 8 != 0 {
        return Err(TorchError::bad_input(format!(
            "{w}x{h}: both sides must be multiples of 8 (the latent grid)"
        )));
    }
    Ok(batch)
}

/// The vae stage's work on frames already on the device: colour conversion, scaling to the
/// model's input, the encoder, and the one copy back of the batch's latents (f32 on the CPU).
fn encode_uploaded(
    vae: &Vae,
    batch: &Batch,
    raw: &Tensor,
    options: &EncodeOptions,
) -> Result<Tensor, TorchError> {
    let device = raw.device();
    let mut x = batch
        .to_rgb(raw)?
        .f_to_kind(model_kind(vae))
        .and_then(|t| t.f_div_scalar(255.0))
        .map_err(torch_error)?;
    if device.is_cuda() {
        // RGB24 frames arrive channels-last, and a convolution keeps its input's layout, so
        // the whole encoder would run NHWC: on the H100 that made PyTorch's SD VAE encoder
        // 65 ms a frame instead of 44 (../shared/docs/gpu.md; GroupNorm wants NCHW).
        x = x.f_contiguous().map_err(torch_error)?;
    }
    crate::runtime::frames::to_host_f32(&tch::no_grad(|| vae.encode_with(&x, options))?)
}

/// `bench_model` for the vae stage: [`encode_uploaded`] on random frames already on the device,
/// call after call, or with `model_only` the encoder alone on a random NCHW batch in the
/// model's precision (what diffusers' benchmarks time). See [`crate::ops::bench`].
pub fn bench(op: &BenchModel) -> Result<BenchReply, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let batch = on_latent_grid(Batch::of(i64::from(op.n), op.layout)?)?;
    let options = EncodeOptions::of(op.tiling, None, batch.n)?;
    with_vae(folder, device, |vae| {
        if op.model_only {
            let (w, h) = batch.picture_size();
            let x01 = Tensor::f_rand([batch.n, 3, h, w], (model_kind(vae), device))
                .map_err(torch_error)?;
            return crate::ops::bench::time_calls(op, device, batch.n, || {
                crate::runtime::frames::to_host_f32(&tch::no_grad(|| {
                    vae.encode_with(&x01, &options)
                })?)
                .map(drop)
            });
        }
        let raw = crate::ops::bench::random_frames(&batch, device)?;
        crate::ops::bench::time_calls(op, device, batch.n, || {
            encode_uploaded(vae, &batch, &raw, &options).map(drop)
        })
    })
}

/// Images in [0, 1] → AutoencoderKL's [-1, 1], failing with libtorch's error (out of memory
/// included) instead of panicking as tch's operators do.
fn to_kl_range(x01: &Tensor) -> Result<Tensor, TorchError> {
    x01.f_mul_scalar(2.0)
        .and_then(|t| t.f_sub_scalar(1.0))
        .map_err(torch_error)
}

/// How a frame batch is encoded beyond the default (whole frames, posterior mean).
#[derive(Debug, Default)]
struct EncodeOptions {
    tiling: bool,
    /// One seed per frame when sampling.
    seeds: Option<Vec<u64>>,
}

impl EncodeOptions {
    fn of(tiling: bool, sampling: Option<&Sampling>, n: i64) -> Result<Self, TorchError> {
        let seeds = match sampling {
            None => None,
            Some(s) if s.frame_index.len() as i64 != n => {
                return Err(TorchError::bad_input(format!(
                    "sampling needs one frame_index per frame ({} for {n} frames)",
                    s.frame_index.len()
                )))
            }
            Some(s) => Some(
                s.frame_index
                    .iter()
                    .map(|i| s.seed.wrapping_add(*i))
                    .collect(),
            ),
        };
        Ok(Self { tiling, seeds })
    }
}

impl Vae {
    /// [`Vae::encode`] with tiling and per-frame sampling, which only AutoencoderKL has.
    fn encode_with(&self, x01: &Tensor, options: &EncodeOptions) -> Result<Tensor, TorchError> {
        match self {
            Vae::Kl(m) if options.tiling || options.seeds.is_some() => {
                let x = to_kl_range(x01)?;
                let tiling = options.tiling.then(|| Tiling::for_config(m.config()));
                Ok(match (&options.seeds, tiling) {
                    (Some(seeds), tiling) => m.encode_sampled_per_frame(&x, tiling, seeds)?,
                    (None, Some(tiling)) => m.encode_tiled(&x, tiling, None)?,
                    (None, None) => m.encode(&x, None)?,
                })
            }
            Vae::Tiny(_) if options.tiling => Err(TorchError::unsupported(
                "tiling is for AutoencoderKL models; TAESD models encode whole frames",
            )),
            Vae::Tiny(_) if options.seeds.is_some() => Err(TorchError::unsupported(
                "sample_seed is for AutoencoderKL models; TAESD latents are deterministic",
            )),
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

/// The batch size that fits the CUDA device's free memory for frames of the op's size. Encodes
/// one and then two blank frames of that size with the op's options and measures the
/// allocator's peak for each: the difference is what one more frame costs, the rest is fixed
/// (cuDNN workspace and the like).
pub fn plan_batch(op: &VaePlanBatch) -> Result<VaeBatchPlan, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    if !device.is_cuda() {
        return Err(TorchError::unsupported(
            "vae_plan_batch measures CUDA memory; the CPU has no device memory to plan for",
        ));
    }
    let grid = |v: u32| v > 0 && v.is_multiple_of(8);
    if !grid(op.height) || !grid(op.width) {
        return Err(TorchError::bad_input(
            "\"height\" and \"width\" must be positive multiples of 8",
        ));
    }
    let (h, w) = (i64::from(op.height), i64::from(op.width));
    let options = EncodeOptions {
        tiling: op.tiling,
        seeds: None,
    };
    with_vae(folder, device, |vae| {
        let kind = model_kind(vae);
        let peak_for = |n: i64| -> Result<u64, TorchError> {
            crate::runtime::cuda::sync_thread_stream(device)?;
            let before = crate::runtime::cuda::memory(device)?.allocated;
            crate::runtime::cuda::reset_peak(device)?;
            {
                let x = Tensor::f_zeros([n, 3, h, w], (kind, device)).map_err(torch_error)?;
                let latents = tch::no_grad(|| vae.encode_with(&x, &options))?;
                drop(latents);
            }
            crate::runtime::cuda::sync_thread_stream(device)?;
            Ok(crate::runtime::cuda::memory(device)?
                .peak_allocated
                .saturating_sub(before))
        };
        let one = peak_for(1)?;
        let two = peak_for(2)?;
        let per_frame = two.saturating_sub(one).max(1);
        let fixed = one.saturating_sub(per_frame);
        let usable = crate::runtime::cuda::memory(device)?.usable();
        let budget = (usable as f64 * PLAN_MEMORY_SHARE) as u64;
        let batch = (budget.saturating_sub(fixed) / per_frame).clamp(1, PLAN_MAX_BATCH as u64);
        Ok(VaeBatchPlan {
            batch_size: batch,
            per_frame_bytes: per_frame,
            fixed_bytes: fixed,
            usable_bytes: usable,
        })
    })
}
