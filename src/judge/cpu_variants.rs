//! llama.cpp's CPU kernels as loadable modules, for a binary that must run well on any x86-64.
//!
//! A portable build (the Python wheel, feature `cpu-variants`) compiles ggml's CPU backend once
//! per instruction-set level, from the x86-64 baseline up to AVX-512 with VNNI and BF16, each as
//! a `libggml-cpu-LEVEL.so` module. ggml scores every module against the running CPU and keeps
//! the best, so the binary targets the baseline while the kernels use what the CPU has.
//!
//! The modules are looked for, in order: beside the binary's grafted libraries in a wheel
//! install (`SITE/rejudge.libs/` for a binary in `SITE/rejudge.scripts/`), then in the binary's
//! own folder, else in the folder the build wrote them to (a `cargo run` on the build machine).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The file-name prefix and suffix of ggml's CPU modules.
const PREFIX: &str = "libggml-cpu-";
const SUFFIX: &str = ".so";

/// Loads the best CPU module once per process; later calls return the first outcome.
pub fn ensure_loaded() -> Result<(), String> {
    static LOADED: OnceLock<Result<String, String>> = OnceLock::new();
    LOADED
        .get_or_init(load_best)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// Where the modules were loaded from, when a CPU backend is now registered.
fn load_best() -> Result<String, String> {
    // ggml announces each module it loads on standard error; the library prints nothing.
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let candidates = candidates();
    let loaded_from = match candidates.iter().find(|folder| holds_modules(folder)) {
        Some(folder) => {
            llama_cpp_2::llama_backend::load_backends_from_path(folder);
            folder.display().to_string()
        }
        None => {
            // The folder the build wrote the modules to, known at compile time.
            llama_cpp_2::llama_backend::load_backends();
            "the build's own folder".to_owned()
        }
    };
    let has_cpu = llama_cpp_2::list_llama_ggml_backend_devices()
        .iter()
        .any(|device| device.backend == "CPU");
    if has_cpu {
        return Ok(loaded_from);
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "this rejudge build loads llama.cpp's CPU kernels at run time, and no {PREFIX}*{SUFFIX} \
         module that runs on this CPU was found (looked in: {})\nhint: reinstall the wheel, or \
         use a build without the cpu-variants feature",
        looked.join(", ")
    ))
}

fn candidates() -> Vec<PathBuf> {
    let mut folders = Vec::new();
    if let Some(own) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        if let Some(site) = own.parent() {
            folders.push(site.join("rejudge.libs"));
        }
        folders.push(own);
    }
    folders
}

fn holds_modules(folder: &Path) -> bool {
    let Ok(entries) = fs_err::read_dir(folder) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with(PREFIX) && name.ends_with(SUFFIX)
    })
}
