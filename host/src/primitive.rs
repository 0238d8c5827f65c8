//! Rhai front end of a primitive's configuration ([`yunmin_core::config::Primitive`]): its
//! documented options are option-map keys laid over the defaults by
//! [`yunmin_core::config::overlay`], the same mechanism that makes them command-line flags
//! ([`yunmin_cli::CliOptions`], re-exported here).

use crate::errors::{RhaiResult, msg_err};
use serde_json::{Map, Value};
pub use yunmin_cli::{CliOptions, OptionSet};
use yunmin_core::config::Primitive;

/// The option keys of `T`, for the static check and option lists.
pub fn keys<T: Primitive>() -> Vec<&'static str> {
    T::OPTIONS.iter().map(|o| o.key).collect()
}

/// `base` with a Rhai option map laid over it; an unknown key or a value that does not fit is
/// an error naming it.
pub fn from_rhai<T: Primitive>(base: T, opts: rhai::Map) -> RhaiResult<T> {
    from_rhai_as(T::NAME, base, opts)
}

/// [`from_rhai`] for a function other than the primitive's own, named in its errors.
pub fn from_rhai_as<T: Primitive>(func: &'static str, base: T, opts: rhai::Map) -> RhaiResult<T> {
    let json: Value = rhai::serde::from_dynamic(&rhai::Dynamic::from_map(opts))?;
    let given = match json {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    yunmin_core::config::overlay_as(func, &base, &given).map_err(|e| msg_err(e.to_string()))
}

/// [`from_rhai_as`] for a function that takes only `keys` of the primitive's options (the
/// rest are settled by what it works on): a key outside them is an error listing `keys`.
pub fn from_rhai_subset<T: Primitive>(
    func: &'static str,
    base: T,
    opts: rhai::Map,
    keys: &[&str],
) -> RhaiResult<T> {
    crate::options::Options::new(func, opts.clone(), keys)?;
    from_rhai_as(func, base, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command, FromArgMatches};
    use yunmin_cli::flag;
    use yunmin_core::merge::MergeConfig;

    fn cli<T: Primitive>(args: &[&str]) -> Result<T, String> {
        let cmd = CliOptions::<T>::augment_args(Command::new("t").no_binary_name(true));
        let m = cmd.try_get_matches_from(args).map_err(|e| e.to_string())?;
        let o = CliOptions::<T>::from_arg_matches(&m).map_err(|e| e.to_string())?;
        o.config(T::default()).map_err(|e| e.to_string())
    }

    fn rhai<T: Primitive>(pairs: &[(&str, rhai::Dynamic)]) -> Result<T, String> {
        let mut m = rhai::Map::new();
        for (k, v) in pairs {
            m.insert((*k).into(), v.clone());
        }
        from_rhai(T::default(), m).map_err(|e| e.to_string())
    }

    /// Every option of every primitive reaches the same field from the command line and from
    /// Rhai, with the same default when not given.
    fn same_from_cli_and_rhai<T: Primitive>(values: &[(&str, &str, rhai::Dynamic)]) {
        let json = |t: &T| serde_json::to_value(t).unwrap();
        let default = json(&T::default());
        yunmin_core::config::options_match_fields::<T>().unwrap();
        assert_eq!(json(&cli::<T>(&[]).unwrap()), default);
        assert_eq!(json(&rhai::<T>(&[]).unwrap()), default);
        assert_eq!(
            values.len(),
            T::OPTIONS.len(),
            "a value for every option of {}",
            T::NAME
        );
        for (key, text, dynamic) in values {
            let from_rhai = json(&rhai::<T>(&[(key, dynamic.clone())]).unwrap());
            assert_ne!(from_rhai, default, "{key}: the value is not the default");
            if T::CLI_OWN.contains(key) {
                let e = cli::<T>(&[&format!("--{}", flag(key)), text])
                    .err()
                    .unwrap_or_default();
                assert!(
                    e.contains(&flag(key)),
                    "{key}: not refused on the command line"
                );
                continue;
            }
            let from_cli = json(&cli::<T>(&[&format!("--{}", flag(key)), text]).unwrap());
            assert_eq!(from_cli, from_rhai, "{key}");
        }
    }

    #[test]
    fn merge_options_reach_the_same_fields_from_cli_and_rhai() {
        same_from_cli_and_rhai::<MergeConfig>(&[
            ("method", "ties", "ties".into()),
            (
                "weights",
                "0.5,-1.25",
                rhai::Dynamic::from_array(vec![0.5.into(), (-1.25).into()]),
            ),
            ("density", "0.4", 0.4.into()),
            ("lambda", "2", 2.0.into()),
            ("drop", "0.1", 0.1.into()),
            ("seed", "7", 7_i64.into()),
            ("check_base", "false", false.into()),
        ]);
    }

    /// The optimiser's options, with values off both `pretrain`'s and `lora`'s defaults.
    fn optim_values() -> Vec<(&'static str, &'static str, rhai::Dynamic)> {
        vec![
            ("steps", "7", 7_i64.into()),
            ("batch", "3", 3_i64.into()),
            ("grad_accum", "2", 2_i64.into()),
            ("lr", "0.25", 0.25.into()),
            ("min_lr_ratio", "0.5", 0.5.into()),
            ("warmup_steps", "4", 4_i64.into()),
            ("weight_decay", "0.125", 0.125.into()),
            ("grad_clip", "2.5", 2.5.into()),
            ("eval_every", "9", 9_i64.into()),
            ("eval_windows", "11", 11_i64.into()),
            ("log_every", "13", 13_i64.into()),
            ("checkpoint_every", "17", 17_i64.into()),
        ]
    }

    #[test]
    fn pretrain_and_lora_options_reach_the_same_fields_from_cli_and_rhai() {
        use yunmin_core::train::{LoraConfig, PretrainConfig};
        let mut pretrain = vec![
            ("name", "small", "small".into()),
            ("layers", "2", 2_i64.into()),
            ("hidden", "64", 64_i64.into()),
            ("heads", "4", 4_i64.into()),
            ("kv_heads", "1", 1_i64.into()),
            ("intermediate", "96", 96_i64.into()),
            ("vocab_size", "300", 300_i64.into()),
            ("tie_embeddings", "false", false.into()),
            ("rope_theta", "500000", 500000.0.into()),
            ("eos_token_id", "2", 2_i64.into()),
            ("bos_token_id", "1", 1_i64.into()),
            ("seq_len", "32", 32_i64.into()),
            ("heldout", "0.2", 0.2.into()),
            ("seed", "5", 5_i64.into()),
            ("device", "ndarray", "ndarray".into()),
            ("model_dir", "models/small", "models/small".into()),
            ("tokenizer", "tok.json", "tok.json".into()),
            ("resume", "false", false.into()),
        ];
        pretrain.extend(optim_values());
        same_from_cli_and_rhai::<PretrainConfig>(&pretrain);
        let mut lora = vec![
            ("rank", "4", 4_i64.into()),
            ("alpha", "8", 8.0.into()),
            ("dropout", "0.25", 0.25.into()),
            (
                "targets",
                "q_proj,v_proj",
                rhai::Dynamic::from_array(vec!["q_proj".into(), "v_proj".into()]),
            ),
            ("seq_len", "32", 32_i64.into()),
            ("heldout", "0.2", 0.2.into()),
            ("seed", "5", 5_i64.into()),
            ("device", "ndarray", "ndarray".into()),
            ("model_dir", "models/lora_x", "models/lora_x".into()),
            ("resume", "false", false.into()),
        ];
        lora.extend(optim_values());
        same_from_cli_and_rhai::<LoraConfig>(&lora);
        same_from_cli_and_rhai::<yunmin_core::eval::runner::EvalConfig>(&[
            ("seq_len", "64", 64_i64.into()),
            ("batch", "4", 4_i64.into()),
            ("max_docs", "30", 30_i64.into()),
            ("prompts", "3", 3_i64.into()),
            ("prompt_tokens", "8", 8_i64.into()),
            ("max_new_tokens", "12", 12_i64.into()),
            ("bleu_tokenize", "13a", "13a".into()),
            ("rouge_tokenizer", "jamo", "jamo".into()),
            ("offset", "30", 30_i64.into()),
            (
                "domains",
                "law,news",
                rhai::Dynamic::from_array(vec!["law".into(), "news".into()]),
            ),
        ]);
        // What a worker is handed as a `--config` file gives the same configuration back.
        let cfg = rhai::<LoraConfig>(&[("rank", 4_i64.into()), ("steps", 9_i64.into())]).unwrap();
        let back: LoraConfig = yunmin_core::config::overlay(
            &LoraConfig::default(),
            &yunmin_core::config::options_of(&cfg),
        )
        .unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn bleu_and_rouge_options_reach_the_same_fields_from_cli_and_rhai() {
        use yunmin_core::eval::{bleu::BleuConfig, rouge::RougeConfig};
        same_from_cli_and_rhai::<BleuConfig>(&[
            ("tokenize", "char", "char".into()),
            ("lowercase", "true", true.into()),
            ("smooth_method", "add-k", "add-k".into()),
            ("smooth_value", "0.5", 0.5.into()),
            ("max_ngram_order", "2", 2_i64.into()),
            ("effective_order", "true", true.into()),
        ]);
        same_from_cli_and_rhai::<RougeConfig>(&[
            ("tokenizer", "char", "char".into()),
            (
                "types",
                "rouge1,rougeL",
                rhai::Dynamic::from_array(vec!["rouge1".into(), "rougeL".into()]),
            ),
            ("use_stemmer", "true", true.into()),
        ]);
    }

    #[test]
    fn generate_and_tokenizer_options_reach_the_same_fields_from_cli_and_rhai() {
        use yunmin_core::model::GenerateConfig;
        use yunmin_core::text::TokenizerConfig;
        same_from_cli_and_rhai::<GenerateConfig>(&[
            ("max_new_tokens", "8", 8_i64.into()),
            ("temperature", "0.7", 0.7.into()),
            ("top_k", "5", 5_i64.into()),
            ("top_p", "0.9", 0.9.into()),
            ("seed", "3", 3_i64.into()),
            ("eos_token_id", "2", 2_i64.into()),
        ]);
        same_from_cli_and_rhai::<TokenizerConfig>(&[
            ("vocab_size", "500", 500_i64.into()),
            ("min_frequency", "3", 3_i64.into()),
            (
                "special_tokens",
                "<s>,</s>",
                rhai::Dynamic::from_array(vec!["<s>".into(), "</s>".into()]),
            ),
            ("sample", "0.5", 0.5.into()),
            ("max_docs", "10", 10_i64.into()),
            ("seed", "9", 9_i64.into()),
            ("max_chars", "1000", 1000_i64.into()),
        ]);
    }

    #[test]
    fn dedup_options_reach_the_same_fields_from_cli_and_rhai() {
        use yunmin_core::dedup::DedupConfig;
        same_from_cli_and_rhai::<DedupConfig>(&[
            ("threshold", "0.7", 0.7.into()),
            ("perms", "64", 64_i64.into()),
            ("bands", "16", 16_i64.into()),
            ("rows", "4", 4_i64.into()),
            ("recall", "0.99", 0.99.into()),
            ("shingles", "jamo3+word5", "jamo3+word5".into()),
            ("combine", "mean", "mean".into()),
            ("hashing", "minhash", "minhash".into()),
            ("jamo_weight", "0.7", 0.7.into()),
            (
                "index",
                "redis://127.0.0.1:6379/0",
                "redis://127.0.0.1:6379/0".into(),
            ),
            ("namespace", "ns", "ns".into()),
            ("keep", "smallest_id", "smallest_id".into()),
            ("verify", "exact_all", "exact_all".into()),
            ("seed", "5", 5_i64.into()),
            ("kept", "data/kept", "data/kept".into()),
            ("shard_docs", "10", 10_i64.into()),
            ("batch", "100", 100_i64.into()),
            ("keep_index", "true", true.into()),
        ]);
        // A worker's phase is the CLI's own flag, not an option.
        let e = rhai::<DedupConfig>(&[("phase", "index".into())]).unwrap_err();
        assert!(e.contains("unknown option `phase`"), "{e}");
    }

    #[test]
    fn chart_options_reach_the_same_fields_from_cli_and_rhai() {
        same_from_cli_and_rhai::<yunmin_core::report::ChartConfig>(&[
            ("x", "domain", "domain".into()),
            ("y", "ppl", "ppl".into()),
            ("group", "model", "model".into()),
            ("title", "t", "t".into()),
            ("width", "640", 640_i64.into()),
            ("height", "320", 320_i64.into()),
            ("y_min", "1.5", 1.5.into()),
            ("y_max", "9.5", 9.5.into()),
        ]);
    }

    #[test]
    fn diff_options_reach_the_same_fields_from_cli_and_rhai() {
        same_from_cli_and_rhai::<yunmin_core::merge::DiffConfig>(&[
            ("domain", "law", "law".into()),
            ("diffs_dir", "d", "d".into()),
            ("stats_dir", "s", "s".into()),
        ]);
    }

    #[test]
    fn load_model_and_write_csv_options_reach_the_same_fields_from_cli_and_rhai() {
        same_from_cli_and_rhai::<yunmin_core::model::LoadConfig>(&[(
            "device",
            "ndarray",
            "ndarray".into(),
        )]);
        same_from_cli_and_rhai::<yunmin_core::report::CsvConfig>(&[
            ("header", "false", false.into()),
            ("separator", ";", ";".into()),
        ]);
    }

    #[test]
    fn dedup_eval_set_options_reach_the_same_fields_from_cli_and_rhai() {
        same_from_cli_and_rhai::<yunmin_core::dedup::eval::EvalConfig>(&[
            ("corpora", "c", "c".into()),
            (
                "domains",
                "a,b",
                rhai::Dynamic::from_array(vec!["a".into(), "b".into()]),
            ),
            ("per_domain", "7", 7_i64.into()),
            ("dup_fraction", "0.3", 0.3.into()),
            ("hard_fraction", "0.1", 0.1.into()),
            ("max_chars", "900", 900_i64.into()),
            ("short_chars", "50", 50_i64.into()),
            ("seed", "5", 5_i64.into()),
        ]);
    }

    #[test]
    fn ingest_options_reach_the_same_fields_from_cli_and_rhai() {
        use yunmin_core::ingest::IngestConfig;
        same_from_cli_and_rhai::<IngestConfig>(&[
            ("out", "data/in", "data/in".into()),
            ("rejected", "data/rej", "data/rej".into()),
            ("preview", "p.json", "p.json".into()),
            ("report", "r.json", "r.json".into()),
            ("upload", "s3://b/p/", "s3://b/p/".into()),
            ("default_domain", "web", "web".into()),
            ("domain_from_path", "false", false.into()),
            ("max_line_bytes", "100", 100_i64.into()),
            ("shard_docs", "10", 10_i64.into()),
            ("preview_docs", "3", 3_i64.into()),
            ("batch_chunks", "2", 2_i64.into()),
            ("text_field", "content", "content".into()),
            ("id_field", "doc_id", "doc_id".into()),
            ("domain_field", "metadata.domain", "metadata.domain".into()),
            ("keep_extras", "false", false.into()),
            (
                "endpoint_url",
                "http://127.0.0.1:9000",
                "http://127.0.0.1:9000".into(),
            ),
            ("region", "ap-northeast-2", "ap-northeast-2".into()),
            ("in_flight", "2", 2_i64.into()),
            ("retries", "1", 1_i64.into()),
            ("page_size", "10", 10_i64.into()),
            ("chunk_bytes", "65536", 65536_i64.into()),
            ("keep_line_bytes", "1024", 1024_i64.into()),
            ("connect_timeout_s", "9", 9_i64.into()),
            ("batch_rows", "64", 64_i64.into()),
        ]);
        // A nested field's option lands inside its struct, and its type is checked.
        let c = rhai::<IngestConfig>(&[("in_flight", 2_i64.into())]).unwrap();
        assert_eq!(c.source.in_flight, 2);
        let e = rhai::<IngestConfig>(&[("in_flight", "two".into())]).unwrap_err();
        assert!(e.contains("option `in_flight`"), "{e}");
        let e = rhai::<IngestConfig>(&[("endpoint", "http://x".into())]).unwrap_err();
        assert!(e.contains("did you mean `endpoint_url`"), "{e}");
    }

    #[test]
    fn convert_options_reach_the_same_fields_from_cli_and_rhai() {
        use yunmin_core::columnar::ConvertConfig;
        same_from_cli_and_rhai::<ConvertConfig>(&[
            ("text", "zstd:9", "zstd:9".into()),
            ("tokens", "snappy", "snappy".into()),
            ("other", "none", "none".into()),
            ("brotli_encoder", "rust", "rust".into()),
            ("row_group_rows", "100", 100_i64.into()),
            ("row_group_mb", "2", 2_i64.into()),
            ("dictionary", "false", false.into()),
            ("statistics", "page", "page".into()),
            ("heldout", "0.2", 0.2.into()),
            ("seed", "7", 7_i64.into()),
            (
                "extras",
                "label:int64,lang:utf8",
                rhai::Dynamic::from_array(vec!["label:int64".into(), "lang:utf8".into()]),
            ),
            ("unknown_fields", "reject", "reject".into()),
            ("chunk_rows", "10", 10_i64.into()),
            ("chunk_mb", "1", 1_i64.into()),
            ("buffer_mb", "4", 4_i64.into()),
            ("layout", "hf", "hf".into()),
            (
                "domains",
                "law,news",
                rhai::Dynamic::from_array(vec!["law".into(), "news".into()]),
            ),
        ]);
        // The flags a config gives back parse to that config.
        let c = rhai::<ConvertConfig>(&[
            (
                "extras",
                rhai::Dynamic::from_array(vec!["label:int64".into()]),
            ),
            ("dictionary", false.into()),
            ("layout", "hf".into()),
        ])
        .unwrap();
        let flags = c.cli_args();
        let back: ConvertConfig =
            cli(&flags.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(back, c);
        let e =
            rhai::<ConvertConfig>(&[("extras", rhai::Dynamic::from_array(vec!["label".into()]))])
                .unwrap_err();
        assert!(e.contains("extras") && e.contains("NAME:TYPE"), "{e}");
    }

    #[test]
    fn unknown_options_and_wrong_values_are_named() {
        let e = rhai::<MergeConfig>(&[("densty", 0.4.into())]).unwrap_err();
        assert!(
            e.contains("unknown option `densty`") && e.contains("did you mean `density`"),
            "{e}"
        );
        let e = rhai::<MergeConfig>(&[("method", "average".into())]).unwrap_err();
        assert!(
            e.contains("option `method`") && e.contains("average"),
            "{e}"
        );
        let e = cli::<MergeConfig>(&["--density", "lots"]).unwrap_err();
        assert!(e.contains("--density") && e.contains("lots"), "{e}");
        let e = cli::<MergeConfig>(&["--densty", "0.4"]).unwrap_err();
        assert!(e.contains("--densty"), "{e}");
    }
}
