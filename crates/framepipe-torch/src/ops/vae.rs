//! The `vae_*` requests behind `framepipe vae`: encode images to latents exactly as the pipeline
//! stores them, decode latents to PNG frames, and measure a round trip (PSNR, SSIM).
//!
//! Model folders: diffusers `AutoencoderKL` or `AutoencoderTiny` (`config.json` with its
//! `_class_name`), or TAESD's native pair (`*encoder*.safetensors` + `*decoder*.safetensors`,
//! e.g. taef2). Image sides must be multiples of 8 (the latent grid); other sizes are refused
//! with the size named, never silently padded or cropped.
use std::path::{Path, PathBuf};

use framepipe_proto::ops::{
    BenchModel, BenchReply, Decoded, Encoded, InputRange, LatentDtype, Reconstruct, RoundTrip,
    Sampling, VaeBatchPlan, VaeClass, VaeDecodeFrames, VaeEncodeFrames, VaeEncodeImages,
    VaeEncodeImagesReply, VaeFacts, VaeInfo, VaePlanBatch, PSNR_IDENTICAL,
};
use framepipe_proto::{Crop, TorchError};
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
        // TAESD's native files; an encoder alone makes a model that encodes but cannot decode.
        match find_native(folder, "encoder") {
            Some(enc) => Ok(Vae::Tiny(Box::new(TinyAutoencoder::load_native_parts(
                &enc,
                find_native(folder, "decoder").as_deref(),
                device,
                kind,
            )?))),
            None => Err(TorchError::bad_model(format!(
                "{}: not a VAE folder (no config.json, no *encoder*.safetensors)",
                folder.display()
            ))),
        }
    }

    fn has_decoder(&self) -> bool {
        match self {
            Vae::Kl(_) => true,
            Vae::Tiny(m) => m.has_decoder(),
        }
    }

    fn latent_channels(&self) -> i64 {
        match self {
            Vae::Kl(m) => m.config().latent_channels,
            Vae::Tiny(m) => m.latent_channels(),
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
        self.decode_with(latents, false)
    }

    /// Latents → images in [0, 1], through overlapping tiles when `tiling` (AutoencoderKL only).
    fn decode_with(&self, latents: &Tensor, tiling: bool) -> Result<Tensor, TorchError> {
        let x = match self {
            Vae::Kl(m) => {
                let x = if tiling {
                    m.decode_tiled(latents, Tiling::for_config(m.config()))?
                } else {
                    m.decode(latents)?
                };
                x.f_add_scalar(1.0)
                    .and_then(|t| t.f_div_scalar(2.0))
                    .map_err(torch_error)?
            }
            Vae::Tiny(_) if tiling => {
                return Err(TorchError::unsupported(
                    "tiling is for AutoencoderKL models; TAESD models decode whole frames",
                ))
            }
            Vae::Tiny(m) => m.decode(latents)?,
        };
        x.f_clamp(0.0, 1.0).map_err(torch_error)
    }
}

/// Latents laid out for the decoder, whose convolutions keep their input's layout: channels-last
/// on the CPU, where oneDNN ran the TAESD decoder 1.35x faster that way than on NCHW (diffusers
/// too: 0.86 against 1.16 s a 512x288 frame on the dev box; `index_select` and `from_slice`
/// give NCHW); NCHW on CUDA, where GroupNorm wants it (see `encode_uploaded`).
fn decoder_layout(z: &Tensor) -> Result<Tensor, TorchError> {
    if z.device().is_cuda() {
        return z.f_contiguous().map_err(torch_error);
    }
    // tch has no memory-format API: NHWC memory seen as NCHW is channels-last.
    z.f_permute([0, 2, 3, 1])
        .and_then(|t| t.f_contiguous())
        .and_then(|t| t.f_permute([0, 3, 1, 2]))
        .map_err(torch_error)
}

/// Images in [0, 1] as 8-bit values (still float): what a decoded frame is once stored.
fn to_8bit(x01: &Tensor) -> Result<Tensor, TorchError> {
    x01.f_to_kind(Kind::Float)
        .and_then(|t| t.f_mul_scalar(255.0))
        .and_then(|t| t.f_round())
        .and_then(|t| t.f_clamp(0.0, 255.0))
        .map_err(torch_error)
}

/// PSNR (dB) per frame of `decoded` (`[k, 3, H, W]` in [0, 1], rounded to 8 bits first) against
/// `original` (uint8 `[k, 3, H, W]`), over `picture` (all of it when `None`), on the tensors'
/// device; identical pictures give [`PSNR_IDENTICAL`].
fn psnr_8bit(
    original: &Tensor,
    decoded: &Tensor,
    picture: Option<Crop>,
) -> Result<Tensor, TorchError> {
    let crop = |t: Tensor| -> Result<Tensor, TorchError> {
        match picture {
            None => Ok(t),
            Some(c) => t
                .f_narrow(2, i64::from(c.y), i64::from(c.height))
                .and_then(|t| t.f_narrow(3, i64::from(c.x), i64::from(c.width)))
                .map_err(torch_error),
        }
    };
    let a = crop(original.f_to_kind(Kind::Float).map_err(torch_error)?)?;
    let b = crop(to_8bit(decoded)?)?;
    let floor = 255.0 * 255.0 * 10f64.powf(-PSNR_IDENTICAL / 10.0);
    let mse = a
        .f_sub(&b)
        .and_then(|d| d.f_square())
        .and_then(|d| d.f_mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float))
        .and_then(|m| m.f_clamp_min(floor))
        .map_err(torch_error)?;
    // 10 log10(255² / mse)
    mse.f_reciprocal()
        .and_then(|t| t.f_mul_scalar(255.0 * 255.0))
        .and_then(|t| t.f_log10())
        .and_then(|t| t.f_mul_scalar(10.0))
        .map_err(torch_error)
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

/// `framepipe vae decode`: latents as a pipeline stores them (f32 `[n, C, h, w]`) to packed
/// RGB24 frames in `out`, decoded on the device in one call and copied back once.
pub fn decode_frames(
    op: &VaeDecodeFrames,
    latents: &[f32],
    out: &mut [u8],
) -> Result<Decoded, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let [c, h, w] = op.shape_per_frame;
    let n = i64::from(op.n);
    if n < 1 || c < 1 || h < 1 || w < 1 {
        return Err(TorchError::bad_input(format!(
            "{n} frames of latents {:?}: need at least one frame of a non-empty shape",
            op.shape_per_frame
        )));
    }
    if latents.len() as i64 != n * c * h * w {
        return Err(TorchError::bad_input(format!(
            "latent data holds {} floats, {n} frames of {:?} need {}",
            latents.len(),
            op.shape_per_frame,
            n * c * h * w
        )));
    }
    with_vae(folder, device, |vae| {
        if !vae.has_decoder() {
            return Err(TorchError::bad_model(format!(
                "{}: the model has no decoder (no *decoder*.safetensors): it cannot decode latents",
                folder.display()
            )));
        }
        if c != vae.latent_channels() {
            return Err(TorchError::bad_input(format!(
                "latents have {c} channels, the model in {} makes {}: they come from another model",
                folder.display(),
                vae.latent_channels()
            )));
        }
        let z = Tensor::f_from_slice(latents)
            .and_then(|t| t.f_view([n, c, h, w]))
            .and_then(|t| t.f_to_device(device))
            .and_then(|t| t.f_to_kind(model_kind(vae)))
            .map_err(torch_error)?;
        let z = decoder_layout(&z)?;
        let images = tch::no_grad(|| vae.decode_with(&z, op.tiling))?;
        let rgb = to_8bit(&images)?
            .f_to_kind(Kind::Uint8)
            .and_then(|t| t.f_permute([0, 2, 3, 1]))
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_contiguous())
            .map_err(torch_error)?;
        let (height, width) = (rgb.size()[1], rgb.size()[2]);
        let needed = rgb.numel();
        if out.len() < needed {
            return Err(TorchError::bad_input(format!(
                "output buffer holds {} bytes, {needed} needed",
                out.len()
            )));
        }
        rgb.f_copy_data_u8(&mut out[..needed], needed)
            .map_err(torch_error)?;
        Ok(Decoded {
            n: op.n,
            width: width as u32,
            height: height as u32,
        })
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
                decoder: true,
            },
            // The TAESD family always shrinks by 8 (three stride-2 convolutions).
            Vae::Tiny(m) => VaeFacts {
                class: VaeClass::Taesd,
                scaling_factor,
                shift_factor,
                input_range: InputRange::ZeroToOne,
                latent_channels: m.latent_channels(),
                downsampling: 8,
                decoder: m.has_decoder(),
            },
        })
    })
}

/// Encodes frames into `out` (f32 latents, row-major [n, C, h, w]); returns the latent shape
/// per frame, and with `reconstruct` the PSNR of the chosen frames decoded again. Tiling and
/// per-frame sampling (frame `i` sampled with seed `seed + frame_index[i]`) are for
/// AutoencoderKL models only.
pub fn encode_frames(
    op: &VaeEncodeFrames,
    rgb: &[u8],
    out: &mut [f32],
) -> Result<Encoded, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let batch = on_latent_grid(Batch::new(&op.frames)?)?;
    let options = EncodeOptions::of(op.tiling, op.sampling.as_ref(), batch.n)?;
    if let Some(r) = &op.reconstruct {
        check_reconstruct(r, &batch)?;
    }
    with_vae(folder, device, |vae| {
        if op.reconstruct.is_some() && !vae.has_decoder() {
            return Err(TorchError::bad_model(format!(
                "{}: the model has no decoder (no *decoder*.safetensors): reconstruction needs one",
                folder.display()
            )));
        }
        let (latents, psnr) =
            crate::runtime::canvas::with_frames(&op.frames, &batch, rgb, device, |raw| {
                encode_uploaded(vae, &batch, raw, &options, op.reconstruct.as_ref())
            })?;
        crate::runtime::frames::copy_into(&latents, out)?;
        let size = latents.size();
        Ok(Encoded {
            n: op.frames.n,
            shape_per_frame: [size[1], size[2], size[3]],
            psnr,
        })
    })
}

/// A reconstruction request must name frames of the batch and a part of its picture.
fn check_reconstruct(r: &Reconstruct, batch: &Batch) -> Result<(), TorchError> {
    if let Some(&bad) = r.frames.iter().find(|&&i| i64::from(i) >= batch.n) {
        return Err(TorchError::bad_input(format!(
            "reconstruct frame {bad} of a batch of {}",
            batch.n
        )));
    }
    if !r.frames.windows(2).all(|w| w[0] < w[1]) {
        return Err(TorchError::bad_input(
            "reconstruct frames must be ascending and distinct",
        ));
    }
    let (w, h) = batch.picture_size();
    if let Some(c) = r.picture {
        let inside = c.width > 0
            && c.height > 0
            && i64::from(c.x) + i64::from(c.width) <= w
            && i64::from(c.y) + i64::from(c.height) <= h;
        if !inside {
            return Err(TorchError::bad_input(format!(
                "reconstruct picture {}x{} at ({}, {}) is not inside the {w}x{h} frame",
                c.width, c.height, c.x, c.y
            )));
        }
    }
    Ok(())
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
/// model's input, the encoder, with `reconstruct` the decoder on the chosen frames' latents and
/// their PSNR, and the one copy back of the batch's latents (f32 on the CPU) and PSNRs.
fn encode_uploaded(
    vae: &Vae,
    batch: &Batch,
    raw: &Tensor,
    options: &EncodeOptions,
    reconstruct: Option<&Reconstruct>,
) -> Result<(Tensor, Option<Vec<f64>>), TorchError> {
    let device = raw.device();
    let rgb = batch.to_rgb(raw)?;
    let mut x = rgb
        .f_to_kind(model_kind(vae))
        .and_then(|t| t.f_div_scalar(255.0))
        .map_err(torch_error)?;
    if device.is_cuda() {
        // RGB24 frames arrive channels-last, and a convolution keeps its input's layout, so
        // the whole encoder would run NHWC: on the H100 that made PyTorch's SD VAE encoder
        // 65 ms a frame instead of 44 (../shared/docs/gpu.md; GroupNorm wants NCHW).
        x = x.f_contiguous().map_err(torch_error)?;
    }
    let latents = tch::no_grad(|| vae.encode_with(&x, options))?;
    // Decoded from the latents in the model's precision, before anything leaves the device;
    // the PSNRs travel back with the latents (one wait for the device per batch).
    let psnr = match reconstruct.filter(|r| !r.frames.is_empty()) {
        None => None,
        Some(r) => {
            let chosen =
                Tensor::f_from_slice(&r.frames.iter().map(|&i| i64::from(i)).collect::<Vec<_>>())
                    .and_then(|t| t.f_to_device(device))
                    .map_err(torch_error)?;
            let pick = |t: &Tensor| t.f_index_select(0, &chosen).map_err(torch_error);
            let z = decoder_layout(&pick(&latents)?)?;
            let decoded = tch::no_grad(|| vae.decode_with(&z, options.tiling))?;
            Some(psnr_8bit(&pick(&rgb)?, &decoded, r.picture)?)
        }
    };
    let latents = crate::runtime::frames::to_host_f32(&latents)?;
    let psnr = match psnr {
        None => reconstruct.map(|_| Vec::new()),
        Some(p) => Some(
            Vec::<f64>::try_from(
                p.f_to_kind(Kind::Double)
                    .and_then(|t| t.f_to_device(Device::Cpu))
                    .map_err(torch_error)?,
            )
            .map_err(torch_error)?,
        ),
    };
    Ok((latents, psnr))
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
            encode_uploaded(vae, &batch, &raw, &options, None).map(drop)
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
