//! `model`: a Llama-family decoder in burn 0.22 (`llama`, `qwen2`, `mistral` on one code path) (RMSNorm, rotary embeddings in Hugging
//! Face's rotate-half layout, SwiGLU, grouped-query attention, optional tied embeddings),
//! Hugging Face checkpoints (`config.json`, `model.safetensors`, `tokenizer.json`), PEFT LoRA
//! adapters and KV-cache generation. See `docs/models.md`.

mod adapter;
mod checkpoint;
mod config;
mod device;
mod error;
mod generate;
mod host_forward;
mod host_train;
mod layers;
mod llama;
mod loaded;
mod parallel;
mod peft;
mod row_math;
mod safetensors_io;

pub use adapter::{LoraAdapterFile, LoraFactors, adapter_factors, load_adapter, save_adapter};
pub use checkpoint::{
    build_from_tensors, checkpoint_tokenizer, hf_tensors, load_checkpoint, save_checkpoint,
};
pub use config::{Biases, LlamaConfig, MODEL_TYPES, RopeScaling};
pub use device::{Device, device_names, is_host_cpu, parse_device};
pub use error::ModelError;
pub use generate::{GenerateConfig, generate, generate_uncached, sample};
pub use host_forward::HostLlama;
pub use host_train::{HostLora, ShardGrads};
pub use layers::{LoraPair, Proj, RmsNorm, Rope, apply_rope, seed_dropout};
pub use llama::{
    Attention, DecoderLayer, KvCache, Llama, Mlp, NllScorer, NllSum, PROJECTIONS, hf_tensor_shapes,
    normal_vec, transpose,
};
pub use loaded::{LoadConfig, LoadedModel};
pub use parallel::{map_ordered, model_threads};
pub use peft::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, InitLoraWeights, KEY_PREFIX, LoraFactor,
    LoraTensors, ModuleScaling, ModuleSelector, OneOrMany, PatternMap, lora_key, pair_lora_tensors,
    parse_lora_key, read_adapter_config,
};
pub use safetensors_io::{
    F32Tensor, decode_f32, float_dtype_size, read_checkpoint_dir, read_file as read_safetensors,
    read_metadata, write_file as write_safetensors,
};

/// Revision of the numbers the model phase computes from the same inputs (pretraining, LoRA
/// training, perplexity, generation, merging): raised when a change alters their bits, so a
/// rerun recomputes the cached pipeline stages that called model functions instead of mixing
/// results of two revisions. 2: LoRA training on the CPU by the host trainer ([`HostLora`]),
/// products on gemm's AVX-512 kernels where the CPU has them.
pub const NUMERICS_REVISION: u32 = 2;

#[cfg(test)]
mod arch_tests;
#[cfg(test)]
mod tests;
