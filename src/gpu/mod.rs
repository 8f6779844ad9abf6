//! What framepipe does on a GPU outside the models: canvases made and kept on the model device
//! (`device_canvas`, through the libtorch library) and the CUDA primary context NVDEC and
//! libtorch share (`cuda_context`). `media/` holds FFmpeg only.
pub mod cuda_context;
pub mod device_canvas;
