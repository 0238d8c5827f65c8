//! Choosing the compute device at run time from a name.

use super::ModelError;
use crate::Result;
pub use burn::tensor::Device;

/// Device names this build accepts, for error messages and `--help`.
pub fn device_names() -> &'static str {
    if cfg!(all(feature = "wgpu", feature = "cuda")) {
        "cpu, flex, ndarray, wgpu, cuda, cuda:N"
    } else if cfg!(feature = "wgpu") {
        "cpu, flex, ndarray, wgpu"
    } else if cfg!(feature = "cuda") {
        "cpu, flex, ndarray, cuda, cuda:N"
    } else {
        "cpu, flex, ndarray (build with --features wgpu or cuda for GPUs)"
    }
}

/// Parses a device name: `cpu` (the fastest measured CPU backend: burn-flex, see
/// `docs/bench/model.md`), `flex`, `ndarray`, `wgpu` (feature `wgpu`), `cuda` / `cuda:N`
/// (feature `cuda`). The returned device has no autodiff; training calls `.autodiff()` on it.
pub fn parse_device(name: &str) -> Result<Device> {
    let n = name.trim().to_ascii_lowercase();
    let unknown = || {
        ModelError::Device(
            name.to_string(),
            format!("unknown device (known: {})", device_names()),
        )
    };
    match n.as_str() {
        "" | "cpu" | "flex" => Ok(Device::flex()),
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" => {
            // The lazy constructor panics on first use without an adapter: probe first.
            Device::wgpu_options().init().map_err(|e| {
                ModelError::Device(name.to_string(), format!("no wgpu adapter: {e:?}")).into()
            })
        }
        #[cfg(feature = "cuda")]
        s if s == "cuda" || s.starts_with("cuda:") => {
            let idx = s.strip_prefix("cuda:").unwrap_or("0");
            let i: usize = idx.parse().map_err(|_| unknown())?;
            Ok(Device::cuda(i))
        }
        _ => Err(unknown().into()),
    }
}

/// Whether `device` (with or without autodiff) computes on this machine's CPU (burn-flex or
/// burn-ndarray), where the host forward and the host LoRA trainer run instead of burn's graph.
pub fn is_host_cpu(device: &Device) -> bool {
    let inner = device.clone().inner();
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    inner == Device::flex() || inner == ndarray
}
