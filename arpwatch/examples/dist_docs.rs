//! Writes arpwatch's man pages and shell completions, generated from the command line's clap
//! definition (`arpwatch::cli_command()`), into OUTDIR laid out like `/usr/share`:
//!
//! ```text
//! OUTDIR/man/man1/arpwatch.1                       and arpwatch-SUBCOMMAND.1 for each subcommand
//! OUTDIR/bash-completion/completions/arpwatch
//! OUTDIR/zsh/vendor-completions/_arpwatch
//! OUTDIR/fish/vendor_completions.d/arpwatch.fish
//! ```
//!
//! Run it with `cargo xtask dist-docs OUTDIR` (which builds the kernel object the library embeds
//! first); `deploy/image.sh` installs the result into the image. Its tests run with `cargo test`.

use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(outdir), None) = (args.next(), args.next()) else {
        eprintln!("usage: dist-docs OUTDIR");
        std::process::exit(2);
    };
    match write_all(Path::new(&outdir)) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
        }
        Err(err) => {
            eprintln!("dist-docs: {err}");
            std::process::exit(1);
        }
    }
}

/// Where each shell looks for its completions under `/usr/share`, and the file's name there.
const COMPLETIONS: [(Shell, &str, &str); 3] = [
    (Shell::Bash, "bash-completion/completions", "arpwatch"),
    (Shell::Zsh, "zsh/vendor-completions", "_arpwatch"),
    (Shell::Fish, "fish/vendor_completions.d", "arpwatch.fish"),
];

/// Writes every page and completion script under `outdir`; returns the files written.
fn write_all(outdir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let cmd = arpwatch::cli_command();
    let man = outdir.join("man/man1");
    std::fs::create_dir_all(&man)?;
    // arpwatch.1, and arpwatch-watch.1 etc. for every visible subcommand (not `help`).
    clap_mangen::generate_to(cmd.clone(), &man)?;
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&man)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    for (shell, dir, name) in COMPLETIONS {
        let dir = outdir.join(dir);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "arpwatch", &mut script);
        std::fs::write(&path, script)?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the target's temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path = std::env::temp_dir()
                .join(format!("arpwatch-dist-docs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The visible subcommands, whatever the CLI has today.
    fn subcommands() -> Vec<String> {
        let cmd = arpwatch::cli_command();
        let names: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_owned())
            .collect();
        assert!(names.iter().any(|n| n == "watch"), "{names:?}");
        names
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_man_page_names_every_subcommand_and_each_has_its_own_page() {
        let dir = Scratch::new("man");
        write_all(&dir.0).unwrap();
        let man = dir.0.join("man/man1");
        let page = read(&man.join("arpwatch.1"));
        assert!(page.contains(".TH arpwatch 1"), "a section 1 page: {page}");
        assert!(page.contains("Passive ARP"), "the about text: {page}");
        for sub in subcommands() {
            // The SUBCOMMANDS section lists each as `arpwatch-NAME(1)`.
            assert!(page.contains(&format!("arpwatch\\-{sub}(1)")), "{sub} in arpwatch.1: {page}");
            let sub_page = read(&man.join(format!("arpwatch-{sub}.1")));
            assert!(sub_page.contains(&format!(".TH arpwatch-{sub} 1")), "{sub_page}");
        }
        let watch = read(&man.join("arpwatch-watch.1"));
        for flag in ["iface", "config", "format", "duration", "metrics\\-addr"] {
            assert!(watch.contains(&format!("\\-\\-{flag}")), "--{flag} in arpwatch-watch.1");
        }
        assert!(!man.join("arpwatch-help.1").exists(), "no page for clap's help subcommand");
    }

    #[test]
    fn the_bash_completion_is_valid_bash_and_every_script_knows_every_subcommand() {
        let dir = Scratch::new("completions");
        write_all(&dir.0).unwrap();
        let bash = dir.0.join("bash-completion/completions/arpwatch");
        let out = std::process::Command::new("bash").arg("-n").arg(&bash).output().expect("bash");
        assert!(out.status.success(), "bash -n: {}", String::from_utf8_lossy(&out.stderr));
        // Loaded into a shell, it registers a completion for arpwatch.
        let script = format!("source {} && complete -p arpwatch", bash.display());
        let out = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("arpwatch"));
        for (_, sub_dir, name) in COMPLETIONS {
            let text = read(&dir.0.join(sub_dir).join(name));
            for sub in subcommands() {
                assert!(text.contains(&sub), "{sub} in {name}");
            }
            assert!(text.contains("--iface"), "--iface in {name}");
        }
    }
}
