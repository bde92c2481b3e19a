//! Embeds the apps `keel new` writes: the standard app (the repository root's `metadata/`,
//! `workflows/`, `scripts/` and `seed/`) and every `templates/<name>/` that has a
//! `metadata/` directory. It writes `$OUT_DIR/apps.rs`, a table of `include_bytes!` per
//! file, so every build — debug or release — carries the apps, and an installed `keel` needs
//! no repository beside it (engine/cli/src/new.rs reads the table).

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The directories of the standard app, relative to the repository root.
const STANDARD_PARTS: [&str; 4] = ["metadata", "workflows", "scripts", "seed"];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../..").canonicalize()?;
    let templates = root.join("templates");

    let mut out = String::new();
    writeln!(out, "/// An app's files: (path, contents), sorted by path.")?;
    writeln!(
        out,
        "pub type Files = &'static [(&'static str, &'static [u8])];"
    )?;
    writeln!(out, "/// The standard app.")?;
    writeln!(out, "pub static STANDARD: Files = &[")?;
    let mut files = Vec::new();
    for part in STANDARD_PARTS {
        let dir = root.join(part);
        println!("cargo:rerun-if-changed={}", dir.display());
        collect(&root, &dir, &mut files)?;
    }
    write_files(&mut out, &files)?;
    writeln!(out, "];")?;

    println!("cargo:rerun-if-changed={}", templates.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&templates)? {
        let path = entry?.path();
        if path.join("metadata").is_dir() {
            names.push(path);
        }
    }
    names.sort();
    writeln!(
        out,
        "/// The industry templates: (name, files), sorted by name."
    )?;
    writeln!(out, "pub static TEMPLATES: &[(&str, Files)] = &[")?;
    for dir in names {
        let name = utf8(dir.file_name().map(Path::new).unwrap_or(&dir))?;
        let mut files = Vec::new();
        collect(&dir, &dir, &mut files)?;
        writeln!(out, "    ({name:?}, &[")?;
        write_files(&mut out, &files)?;
        writeln!(out, "    ]),")?;
    }
    writeln!(out, "];")?;

    let target = PathBuf::from(std::env::var("OUT_DIR")?).join("apps.rs");
    std::fs::write(target, out)?;
    Ok(())
}

/// Every file under `dir` (recursively, hidden files and directories left out), as
/// (path relative to `base` with `/` separators, absolute path), sorted.
fn collect(
    base: &Path,
    dir: &Path,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), Box<dyn Error>> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_none_or(|name| name.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(base, &path, files)?;
        } else {
            let relative = path.strip_prefix(base)?;
            let parts: Vec<&str> = relative
                .components()
                .map(|part| utf8(Path::new(part.as_os_str())))
                .collect::<Result<_, _>>()?;
            files.push((parts.join("/"), path));
        }
    }
    Ok(())
}

fn write_files(out: &mut String, files: &[(String, PathBuf)]) -> Result<(), Box<dyn Error>> {
    for (relative, absolute) in files {
        let absolute = utf8(absolute)?;
        writeln!(out, "        ({relative:?}, include_bytes!({absolute:?})),")?;
    }
    Ok(())
}

fn utf8(path: &Path) -> Result<&str, Box<dyn Error>> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()).into())
}
