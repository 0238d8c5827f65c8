//! Rhai module `model`: `Model` and `Adapter` handles over `yunmin_core::model`
//! (`load_model`, `inspect_checkpoint`, `save`, `generate`, `load_adapter`, `with_adapter`) and
//! the `yunmin generate` command.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use clap::Args;
use rhai::{Array, Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::model::{
    GenerateConfig, LlamaConfig, LoadConfig, LoadedModel, LoraAdapterFile, generate, load_adapter,
    parse_device,
};
use yunmin_core::text::Tokenizer;

/// A model handle: an `Arc` of a loaded (inference-mode) model.
#[derive(Clone)]
pub struct Model(pub Arc<LoadedModel>);

/// An adapter handle: a loaded PEFT adapter, its directory and (after training) its statistics.
#[derive(Clone)]
pub struct Adapter {
    /// The factors and config.
    pub file: Arc<LoraAdapterFile>,
    /// The adapter directory.
    pub dir: PathBuf,
    /// Training statistics (empty for a loaded adapter).
    pub stats: Map,
}

/// Resolves a path: inside the run root when it exists there, else as given.
pub fn resolve(host: &Host, p: &str) -> crate::errors::RhaiResult<PathBuf> {
    host.ctx.input_path(p).rhai()
}

/// Generation options from a Rhai map over the defaults, the sampler's seed defaulting to the
/// run's.
fn gen_config(opts: Map, seed: u64) -> RhaiResult<GenerateConfig> {
    let base = GenerateConfig {
        seed,
        ..Default::default()
    };
    crate::primitive::from_rhai(base, opts)
}

fn run_generate(m: &Model, prompt: Dynamic, cfg: &GenerateConfig) -> RhaiResult<Dynamic> {
    let lm = &m.0;
    if prompt.is_string() {
        let ids = lm
            .encode(&prompt.into_string().unwrap_or_default())
            .rhai()?;
        let out = generate(&lm.model, &ids, cfg, &lm.config.eos_token_id).rhai()?;
        Ok(Dynamic::from(lm.decode(&out).rhai()?))
    } else if prompt.is_array() {
        let ids: Vec<u32> = prompt
            .into_array()
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.as_int().ok().and_then(|i| u32::try_from(i).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| msg_err("generate: prompt ids must be non-negative integers"))?;
        let out = generate(&lm.model, &ids, cfg, &lm.config.eos_token_id).rhai()?;
        Ok(Dynamic::from(
            out.into_iter()
                .map(|t| Dynamic::from_int(t as i64))
                .collect::<Array>(),
        ))
    } else {
        Err(msg_err(format!(
            "generate: prompt must be a string or an array of token ids, got {}",
            prompt.type_name()
        )))
    }
}

fn config_map(m: &LoadedModel) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(&m.config)
}

/// Checks a checkpoint directory without loading its weights: `config.json` (parsed and
/// validated), `tokenizer.json` (loaded; its vocabulary must fit the model's) and a weights
/// file must be there. Errors name the missing or bad file.
fn inspect_checkpoint(host: &Host, path: &str) -> RhaiResult<Map> {
    let dir = resolve(host, path)?;
    let dir = std::path::absolute(&dir)
        .map_err(|e| msg_err(format!("inspect_checkpoint: {}: {e}", dir.display())))?;
    let what = "a Hugging Face checkpoint directory has config.json, model.safetensors (or \
                model.safetensors.index.json) and tokenizer.json";
    if !dir.is_dir() {
        return Err(msg_err(format!(
            "checkpoint {}: not a directory ({what})",
            dir.display()
        )));
    }
    let file = |name: &str| -> RhaiResult<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(msg_err(format!(
                "checkpoint: {} is missing ({what})",
                p.display()
            )))
        }
    };
    let config_path = file("config.json")?;
    let tokenizer_path = file("tokenizer.json")?;
    let weights = file("model.safetensors").or_else(|_| file("model.safetensors.index.json"))?;
    let config = LlamaConfig::load(&config_path).rhai()?;
    let tokenizer = Tokenizer::load(&tokenizer_path).rhai()?;
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(msg_err(format!(
            "checkpoint {}: tokenizer.json has {} tokens but config.json's vocab_size is {}",
            dir.display(),
            tokenizer.vocab_size(),
            config.vocab_size
        )));
    }
    let s = |p: &Path| Dynamic::from(p.to_string_lossy().to_string());
    let mut m = Map::new();
    m.insert("dir".into(), s(&dir));
    m.insert("config".into(), rhai::serde::to_dynamic(&config)?);
    m.insert(
        "params".into(),
        Dynamic::from_int(config.num_params() as i64),
    );
    m.insert("weights".into(), s(&weights));
    m.insert("tokenizer".into(), s(&tokenizer_path));
    m.insert(
        "tokenizer_vocab".into(),
        Dynamic::from_int(tokenizer.vocab_size() as i64),
    );
    Ok(m)
}

/// Registers the `model` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.engine().register_type_with_name::<Model>("Model");
    api.engine().register_type_with_name::<Adapter>("Adapter");
    api.engine().register_fn("to_string", |m: &mut Model| {
        format!(
            "Model({} layers, hidden {}, vocab {}, {})",
            m.0.config.num_hidden_layers,
            m.0.config.hidden_size,
            m.0.config.vocab_size,
            m.0.dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "unsaved".into())
        )
    });
    api.engine().register_fn("to_string", |a: &mut Adapter| {
        format!(
            "Adapter(r={}, alpha={}, {} modules, {})",
            a.file.config.r,
            a.file.config.lora_alpha,
            a.file.modules.len(),
            a.dir.display()
        )
    });
    api.engine().register_get("dir", |m: &mut Model| {
        m.0.dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    });
    api.engine()
        .register_get("config", |m: &mut Model| config_map(&m.0));
    api.engine()
        .register_get("params", |m: &mut Model| m.0.config.num_params() as i64);
    api.engine()
        .register_get("dir", |a: &mut Adapter| a.dir.display().to_string());
    api.engine()
        .register_get("stats", |a: &mut Adapter| a.stats.clone());
    api.engine()
        .register_get("rank", |a: &mut Adapter| a.file.config.r as i64);
    api.engine()
        // The scale of modules no rank_pattern / alpha_pattern entry matches.
        .register_get("scaling", |a: &mut Adapter| a.file.config.scaling());

    let h = host.clone();
    api.func(
        "load_model",
        &["path"],
        "Loads a Hugging Face Llama checkpoint directory (config.json + model.safetensors or a sharded\nindex, tokenizer.json if present) on the CPU.",
        move |path: &str| LoadedModel::load_as(&resolve(&h, path)?, &LoadConfig::default()).map(|m| Model(Arc::new(m))).rhai(),
    );
    let h = host.clone();
    api.func(
        "load_model",
        &["path", "opts"],
        &format!(
            "Loads a checkpoint with options. Options (defaults):\n{}",
            yunmin_core::config::describe::<LoadConfig>()
        ),
        move |path: &str, opts: Map| {
            let cfg: LoadConfig = crate::primitive::from_rhai(LoadConfig::default(), opts)?;
            LoadedModel::load_as(&resolve(&h, path)?, &cfg)
                .map(|m| Model(Arc::new(m)))
                .rhai()
        },
    );
    let h = host.clone();
    api.func(
        "inspect_checkpoint",
        &["path"],
        "Checks a Hugging Face checkpoint directory without loading its weights (run-root relative\n\
         first, then as given, like `load_model`): `config.json` must parse as a Llama-family config,\n\
         `tokenizer.json` must load and fit the model's vocabulary, and `model.safetensors` or\n\
         `model.safetensors.index.json` must exist; an error names the missing or bad file. Returns\n\
         `#{ dir (absolute), config, params, weights, tokenizer, tokenizer_vocab }`.",
        move |path: &str| inspect_checkpoint(&h, path),
    );
    let h = host.clone();
    api.func(
        "save",
        &["model", "dir"],
        "Saves a model as a Hugging Face checkpoint (config.json, model.safetensors with format=pt,\ntokenizer.json) in `dir` (relative to the run root); returns the directory.",
        move |m: &mut Model, dir: &str| {
            let mut lm = (*m.0).clone();
            let p = lm.save(&h.ctx.write_path(dir).rhai()?).rhai()?;
            *m = Model(Arc::new(lm));
            Ok::<_, crate::errors::RhaiError>(p.display().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "generate",
        &["model", "prompt"],
        "Greedy continuation of `prompt` (a string, tokenized with the model's tokenizer.json, or an\narray of token ids); returns the new text or ids.",
        move |m: &mut Model, prompt: Dynamic| run_generate(m, prompt, &GenerateConfig { seed: h.ctx.seed(), ..Default::default() }),
    );
    let h = host.clone();
    api.func(
        "generate",
        &["model", "prompt", "opts"],
        &format!(
            "Continuation of `prompt` with options (defaults; `seed`: the run's):\n{}",
            yunmin_core::config::describe::<GenerateConfig>()
        ),
        move |m: &mut Model, prompt: Dynamic, opts: Map| {
            run_generate(m, prompt, &gen_config(opts, h.ctx.seed())?)
        },
    );
    let h = host.clone();
    api.func(
        "generate",
        &["model_dir", "prompt", "opts"],
        "`generate` with a checkpoint directory, loaded on the CPU.",
        move |dir: &str, prompt: Dynamic, opts: Map| {
            let dev = parse_device("cpu").rhai()?;
            let m = Model(Arc::new(
                LoadedModel::load(&resolve(&h, dir)?, &dev).rhai()?,
            ));
            run_generate(&m, prompt, &gen_config(opts, h.ctx.seed())?)
        },
    );
    let h = host.clone();
    api.func(
        "load_adapter",
        &["path"],
        "Loads a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors).",
        move |path: &str| {
            let dir = resolve(&h, path)?;
            let file = load_adapter(&dir).rhai()?;
            Ok::<_, crate::errors::RhaiError>(Adapter {
                file: Arc::new(file),
                dir,
                stats: Map::new(),
            })
        },
    );
    api.func(
        "with_adapter",
        &["model", "adapter"],
        "The model with the adapter folded into its weights (W + scale · B·A per module: lora_alpha/r, or\nlora_alpha/√r with use_rslora, after rank_pattern / alpha_pattern), for generation or saving.",
        |m: &mut Model, a: Adapter| folded(m, &a.file),
    );
    let h = host.clone();
    api.func(
        "with_adapter",
        &["model", "adapter_dir"],
        "`with_adapter` with a PEFT adapter directory.",
        move |m: &mut Model, dir: &str| folded(m, &load_adapter(&resolve(&h, dir)?).rhai()?),
    );
}

/// `m` with the adapter `file` folded into its weights (a model in memory: no directory).
fn folded(m: &Model, file: &LoraAdapterFile) -> RhaiResult<Model> {
    let mut lm = (*m.0).clone();
    lm.model = file.fold_into(lm.model).rhai()?;
    lm.dir = None;
    Ok(Model(Arc::new(lm)))
}

/// `yunmin generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Checkpoint directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt text (needs tokenizer.json beside the model).
    #[arg(long, conflicts_with = "ids")]
    pub prompt: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<u32>,
    /// A LoRA adapter directory to apply first.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Generation options (the same as Rhai's `generate` options).
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<GenerateConfig>,
    /// Device: cpu, flex, ndarray (wgpu / cuda with those features).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Instead of generating, write the prompt's logits ([len][vocab] JSON) to this file
    /// (for parity checks against transformers).
    #[arg(long)]
    pub dump_logits: Option<PathBuf>,
}

/// Runs `yunmin generate`: prints the continuation (text, or ids when given ids).
pub fn run_cli(a: GenerateArgs) -> anyhow::Result<()> {
    let dev = parse_device(&a.device)?;
    let mut lm = LoadedModel::load(&a.model, &dev)?;
    if let Some(ad) = &a.adapter {
        lm.model = load_adapter(ad)?.fold_into(lm.model)?;
    }
    let cfg = a.opts.config(GenerateConfig::default())?;
    if let Some(path) = &a.dump_logits {
        let ids = if a.ids.is_empty() {
            lm.encode(a.prompt.as_deref().unwrap_or_default())?
        } else {
            a.ids.clone()
        };
        let rows = lm.model.logits_of(&ids)?;
        std::fs::write(path, serde_json::to_string(&rows)?)?;
        println!("wrote {} ({} positions)", path.display(), rows.len());
        return Ok(());
    }
    let m = Model(Arc::new(lm));
    let prompt = match &a.prompt {
        Some(p) => Dynamic::from(p.clone()),
        None if !a.ids.is_empty() => Dynamic::from(
            a.ids
                .iter()
                .map(|&i| Dynamic::from_int(i as i64))
                .collect::<Array>(),
        ),
        None => anyhow::bail!("generate: give --prompt TEXT or --ids 1,2,3"),
    };
    let out = run_generate(&m, prompt, &cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    if out.is_array() {
        let ids: Vec<String> = out
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(|x| x.to_string())
            .collect();
        println!("{}", ids.join(","));
    } else {
        println!("{out}");
    }
    Ok(())
}

/// A path relative to `root` unless absolute.
pub fn under(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}
