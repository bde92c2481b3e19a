//! `keel new DIR [--template NAME]`: writes a new app directory from the standard app or
//! one of the industry templates (docs/templates.md). The apps are embedded in the binary by
//! `build.rs`, so an installed `keel` needs no repository beside it.
//!
//! It writes only into a directory that does not exist or is empty, and a failure halfway
//! (a full disk) removes what it wrote: nothing of the user's is ever overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Exit, Failure};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/apps.rs"));
}

/// The name of the standard app, the default of `--template`.
pub const STANDARD: &str = "standard";

use embedded::Files;

/// Every app `keel new` can write: the standard app first, then the templates by name.
pub fn names() -> Vec<&'static str> {
    std::iter::once(STANDARD)
        .chain(embedded::TEMPLATES.iter().map(|(name, _)| *name))
        .collect()
}

fn files(name: &str) -> Option<Files> {
    if name == STANDARD {
        return Some(embedded::STANDARD);
    }
    embedded::TEMPLATES
        .iter()
        .find(|(template, _)| *template == name)
        .map(|(_, files)| *files)
}

/// Runs `keel new`: checks the template and the directory, writes the files, and says what
/// to run next.
pub fn run(dir: &Path, template: &str) -> anyhow::Result<()> {
    let Some(files) = files(template) else {
        return Err(Failure::error(
            Exit::Usage,
            format!(
                "there is no template `{template}`; the known ones are: {}",
                names().join(", ")
            ),
        ));
    };
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Failure::error(
                Exit::Invalid,
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        let mut entries = std::fs::read_dir(dir).map_err(|e| {
            Failure::error(Exit::Invalid, format!("cannot read {}: {e}", dir.display()))
        })?;
        if entries.next().is_some() {
            return Err(Failure::error(
                Exit::Invalid,
                format!(
                    "{} is not empty: keel new writes only into a new or an empty directory, so nothing is overwritten",
                    dir.display()
                ),
            ));
        }
    }
    write_all(dir, files).map_err(|e| {
        Failure::error(
            Exit::Invalid,
            format!("cannot write the app into {}: {e}", dir.display()),
        )
    })?;
    let shown = dir.display();
    // The app is written; a closed standard output (`keel new … | head -1`) is no failure.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "created {shown} from the {template} app ({} files). Next:\n  keel check --app {shown}\n  keel serve --app {shown} --demo    # with the demo users and records of seed/",
        files.len()
    );
    Ok(())
}

/// Writes `files` under `dir` (created when missing, else empty); on a failure removes
/// everything it created and returns the error.
fn write_all(dir: &Path, files: Files) -> std::io::Result<()> {
    let created_dir = !dir.exists();
    let mut top_level: Vec<PathBuf> = Vec::new();
    let result = (|| {
        std::fs::create_dir_all(dir)?;
        for (relative, contents) in files {
            let path = dir.join(relative);
            if let Some(first) = relative.split('/').next() {
                let first = dir.join(first);
                if !top_level.contains(&first) {
                    top_level.push(first);
                }
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, contents)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // The directory was new or empty: everything in it now is ours.
        for path in &top_level {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
        if created_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}
