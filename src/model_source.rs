//! What `run`, `chat`, `bench`, `eval` and `tokenize` open: a `.ember` file as it is, or a
//! GGUF file or Hugging Face checkpoint directory converted with `--quant same` (rows16
//! layout, as `ember convert` writes it). A conversion is cached in `$XDG_CACHE_HOME/ember`
//! (else `~/.cache/ember`) under a key made of the source's canonical path and the sizes and
//! modification times of its files, so later runs map the cached file directly; a changed
//! source gets a new key. `--no-cache`, or a cache directory that cannot be written, converts
//! in memory instead. The edge build (`runtime-only`) has no converter and says so.

use std::error::Error;
use std::path::Path;
#[cfg(feature = "full")]
use std::path::PathBuf;

use ember_format::EmberFile;
use ember_runtime::MappedFile;

/// The flag every model-opening command shares.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SourceArgs {
    /// With a GGUF file or Hugging Face directory: convert it in memory on every run instead
    /// of caching the .ember conversion in $XDG_CACHE_HOME/ember (default ~/.cache/ember).
    #[arg(long)]
    pub no_cache: bool,
}

/// A model file ready to parse: mapped from disk or converted in memory.
pub struct LoadedFile {
    inner: Inner,
}

enum Inner {
    Mapped(MappedFile),
    #[cfg(feature = "full")]
    Memory(ember_format::AlignedBytes),
}

impl LoadedFile {
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Mapped(m) => m.bytes(),
            #[cfg(feature = "full")]
            Inner::Memory(b) => b,
        }
    }

    /// The parsed file (its structure was validated when it was opened).
    pub fn parse(&self) -> Result<EmberFile<'_>, ember_format::Error> {
        match &self.inner {
            Inner::Mapped(m) => m.parse(),
            #[cfg(feature = "full")]
            Inner::Memory(_) => EmberFile::parse(self.bytes()),
        }
    }
}

/// What a model path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ember,
    Gguf,
    HfDir,
}

/// Classifies `path` by its first bytes (a directory, or a `config.json` / `*.safetensors`
/// file standing for its directory, is a Hugging Face checkpoint). Anything else is left
/// to the `.ember` reader, whose error names the problem.
fn classify(path: &Path) -> Kind {
    let Ok(meta) = std::fs::metadata(path) else {
        return Kind::Ember;
    };
    if meta.is_dir() {
        return Kind::HfDir;
    }
    let mut magic = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .unwrap_or(0);
    if n >= 4 && &magic[..4] == b"GGUF" {
        return Kind::Gguf;
    }
    if n == 8 && magic == ember_format::MAGIC {
        return Kind::Ember;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "config.json" || name.ends_with(".safetensors") {
        return Kind::HfDir;
    }
    Kind::Ember
}

/// Opens the model at `path` for a command: see the module documentation.
pub fn open_model(path: &Path, no_cache: bool) -> Result<LoadedFile, Box<dyn Error>> {
    let kind = classify(path);
    if kind == Kind::Ember {
        return Ok(LoadedFile {
            inner: Inner::Mapped(MappedFile::open(path)?),
        });
    }
    convert_source(path, kind, no_cache)
}

#[cfg(not(feature = "full"))]
fn convert_source(path: &Path, kind: Kind, _no_cache: bool) -> Result<LoadedFile, Box<dyn Error>> {
    let what = match kind {
        Kind::Gguf => "a GGUF file",
        _ => "a Hugging Face checkpoint",
    };
    Err(format!(
        "{}: {what}, and this build has no converter: convert it first with a full build (`ember convert {} -o model.ember`)",
        path.display(),
        path.display()
    )
    .into())
}

#[cfg(feature = "full")]
fn convert_source(path: &Path, kind: Kind, no_cache: bool) -> Result<LoadedFile, Box<dyn Error>> {
    use std::time::Instant;

    let label = path.display().to_string();
    // The converter's messages, prefixed with the path unless they already name it.
    let fail = |e: &dyn std::fmt::Display| -> Box<dyn Error> {
        let msg = e.to_string();
        if msg.contains(&label) {
            msg.into()
        } else {
            format!("{label}: {msg}").into()
        }
    };
    let (_, source) = ember_convert::detect(path).map_err(|e| fail(&e))?;
    let cache = if no_cache {
        None
    } else {
        Some(cache_file(&source, kind).map_err(|e| fail(&e))?)
    };
    if let Some(Ok(file)) = &cache {
        if file.is_file() {
            // A damaged entry (say, a disk that filled up) is converted again below.
            if let Ok(mapped) = MappedFile::open(file) {
                return Ok(LoadedFile {
                    inner: Inner::Mapped(mapped),
                });
            }
        }
    }

    let start = Instant::now();
    let (mut writer, _) = ember_convert::build(path, Some(ember_convert::Recipe::Same), false)
        .map_err(|e| fail(&e))?;
    writer.use_rows16();
    let in_memory = |note: String| -> Result<LoadedFile, Box<dyn Error>> {
        let bytes = ember_format::AlignedBytes::from(writer.try_to_vec().map_err(|e| fail(&e))?);
        EmberFile::parse(&bytes).map_err(|e| fail(&e))?;
        eprintln!(
            "ember: converted {label} (--quant same) in memory ({:.2} s){note}",
            start.elapsed().as_secs_f64()
        );
        Ok(LoadedFile {
            inner: Inner::Memory(bytes),
        })
    };
    let file = match cache {
        None => return in_memory(String::new()),
        Some(Err(why)) => return in_memory(format!("; not cached: {why}")),
        Some(Ok(file)) => file,
    };
    let written = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| writer.write_file(&file))
        .map_err(|e| e.to_string())
        .and_then(|_| MappedFile::open(&file).map_err(|e| e.to_string()));
    match written {
        Ok(mapped) => {
            prune_stale(&file);
            eprintln!(
                "ember: converted {label} (--quant same) into {} ({:.2} s); reused on later runs",
                tilde(&file),
                start.elapsed().as_secs_f64()
            );
            Ok(LoadedFile {
                inner: Inner::Mapped(mapped),
            })
        }
        Err(e) => {
            let dir = file.parent().map(tilde).unwrap_or_default();
            in_memory(format!("; cannot write the cache {dir}: {e}"))
        }
    }
}

/// The cache directory: `$XDG_CACHE_HOME/ember` (an absolute path, as the XDG spec asks),
/// else `$HOME/.cache/ember`.
#[cfg(feature = "full")]
fn cache_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").and_then(abs) {
        return Some(xdg.join("ember"));
    }
    std::env::var_os("HOME")
        .and_then(abs)
        .map(|h| h.join(".cache/ember"))
}

/// `Ok(Ok(file))`: where the conversion of `source` (a GGUF file or a checkpoint directory)
/// is cached: `<cache>/<name>-<path hash>-<state hash>.ember`, the state being the sizes and
/// modification times of the files conversion reads. `Ok(Err(why))`: there is no cache
/// directory. `Err`: the source cannot be read.
#[cfg(feature = "full")]
fn cache_file(source: &Path, kind: Kind) -> std::io::Result<Result<PathBuf, String>> {
    let canonical = source.canonicalize()?;
    let mut files = Vec::new();
    if kind == Kind::HfDir {
        for entry in std::fs::read_dir(&canonical)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let read = [".json", ".safetensors", ".model", ".txt", ".jinja"];
            if read.iter().any(|ext| name.ends_with(ext)) && entry.path().is_file() {
                files.push((name, entry.path()));
            }
        }
        files.sort();
    } else {
        files.push((String::new(), canonical.clone()));
    }
    let mut state = format!(
        "ember {} format {} --quant same rows16\n",
        env!("CARGO_PKG_VERSION"),
        ember_format::FORMAT_MAJOR
    );
    for (name, file) in &files {
        let meta = std::fs::metadata(file)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        state.push_str(&format!("{name}\t{}\t{mtime}\n", meta.len()));
    }
    let Some(dir) = cache_dir() else {
        return Ok(Err("neither $XDG_CACHE_HOME nor $HOME is set".into()));
    };
    let path_bytes = canonical.to_string_lossy();
    let stem: String = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .trim_end_matches(".gguf")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let name = format!(
        "{}-{:08x}-{:016x}.ember",
        if stem.is_empty() { "model" } else { &stem },
        ember_format::xxh64::xxh64(path_bytes.as_bytes()) as u32,
        ember_format::xxh64::xxh64(state.as_bytes())
    );
    Ok(Ok(dir.join(name)))
}

/// Removes earlier conversions of the same source (same name and path hash, another state
/// hash) from the cache directory: they can no longer be used.
#[cfg(feature = "full")]
fn prune_stale(file: &Path) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    // `<stem>-<path hash>-` is everything but the last 16 + 6 characters.
    let Some(prefix) = name.get(..name.len().saturating_sub(16 + ".ember".len())) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        let stale = other != name
            && other.starts_with(prefix)
            && other.ends_with(".ember")
            && other.len() == name.len()
            && other[prefix.len()..other.len() - 6]
                .bytes()
                .all(|b| b.is_ascii_hexdigit());
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `path` with the home directory written as `~`.
#[cfg(feature = "full")]
fn tilde(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        if let Ok(rest) = path.strip_prefix(&home) {
            if !home.as_os_str().is_empty() && home != Path::new("/") {
                return format!("~/{}", rest.display());
            }
        }
    }
    path.display().to_string()
}
