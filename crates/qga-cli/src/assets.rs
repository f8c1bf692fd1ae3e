//! `qga generate-assets DIR`: the man page and shell completions, generated from the same clap
//! definitions that parse the command line, so they never drift from it. Packagers install
//! `DIR/man/qga.1` and `DIR/completions/{qga.bash,_qga,qga.fish}`.

use std::path::Path;

use clap_complete::Shell;

/// Writes the man page and the bash, zsh and fish completions under `dir`; returns the paths.
pub(crate) fn generate(mut cmd: clap::Command, dir: &Path) -> Result<Vec<String>, String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let man_dir = dir.join("man");
    let comp_dir = dir.join("completions");
    for d in [&man_dir, &comp_dir] {
        std::fs::create_dir_all(d).map_err(|e| err(d, e))?;
    }
    let mut written = Vec::new();
    let man_path = man_dir.join("qga.1");
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(|e| err(&man_path, e))?;
    std::fs::write(&man_path, page).map_err(|e| err(&man_path, e))?;
    written.push(man_path.display().to_string());
    for (shell, file) in [
        (Shell::Bash, "qga.bash"),
        (Shell::Zsh, "_qga"),
        (Shell::Fish, "qga.fish"),
    ] {
        let path = comp_dir.join(file);
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, "qga", &mut text);
        std::fs::write(&path, text).map_err(|e| err(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
