//! What the ops run on: devices and CUDA streams (`cuda`), frame batches made into RGB on the
//! device (`frames`), device canvases (`canvas`), safetensors weights (`weights`) and the
//! process's loaded models and precision (`models`).
pub mod canvas;
pub mod cuda;
pub mod frames;
pub mod models;
pub mod weights;
