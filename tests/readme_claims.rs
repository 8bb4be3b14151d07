//! README's claims, checked: every subcommand it names exists and has `--help` with examples,
//! every flag its examples use is one the subcommand takes, the links and paths it gives
//! exist, the format version docs/FORMAT.md states is the one the writer writes, the firmware
//! memory figures are what `ember inspect --memory` reports, and the SmolLM2 prompt ids are
//! SmolLM2's. (The edge binary's size is checked by scripts/check-edge-size.sh, the firmware
//! banner by scripts/firmware.sh: both need builds of their own.)

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

fn ember(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ember {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `ember --help` lists (clap's own `help` left out).
fn subcommands() -> Vec<String> {
    let help = ember(&["--help"]);
    let commands = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .split("Options:")
        .next()
        .unwrap();
    commands
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_is_named_in_readme_and_cli_doc_and_has_examples() {
    let readme = readme();
    let cli_doc = std::fs::read_to_string(root().join("docs/CLI.md")).unwrap();
    let table_row = readme
        .lines()
        .find(|l| l.starts_with("| `ember` |"))
        .expect("README's crate table has the ember row");
    let subs = subcommands();
    assert!(subs.len() >= 9, "{subs:?}");
    for sub in &subs {
        assert!(
            table_row.contains(&format!("`{sub}`")),
            "README's crate table does not name `{sub}`: {table_row}"
        );
        assert!(
            cli_doc.contains(&format!("ember {sub}")),
            "docs/CLI.md does not document `ember {sub}`"
        );
        let help = ember(&[sub, "--help"]);
        assert!(
            help.contains("Example") && help.contains(&format!("ember {sub}")),
            "`ember {sub} --help` has no examples:\n{help}"
        );
    }
}

/// The `$E SUBCOMMAND ...` example lines of README's code blocks, comments removed.
fn example_lines(readme: &str) -> Vec<Vec<String>> {
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("$E "))
        .map(|l| {
            l.split(" #")
                .next()
                .unwrap()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn is_flag(token: &str) -> bool {
    let rest = token.trim_start_matches('-');
    token.starts_with('-') && rest.starts_with(|c: char| c.is_ascii_alphabetic())
}

#[test]
fn every_flag_in_readme_examples_is_accepted() {
    let lines = example_lines(&readme());
    assert!(
        lines.len() >= 10,
        "README's examples went missing: {lines:?}"
    );
    let subs = subcommands();
    let mut checked = 0;
    for line in &lines {
        let sub = &line[0];
        assert!(
            subs.contains(sub),
            "README runs `ember {sub}`, which does not exist"
        );
        let help = ember(&[sub, "--help"]);
        for flag in line.iter().filter(|t| is_flag(t)) {
            let flag = flag.split('=').next().unwrap();
            let known = help.contains(&format!("{flag} "))
                || help.contains(&format!("{flag},"))
                || help.contains(&format!("{flag}\n"));
            assert!(
                known,
                "README's `ember {sub} ... {flag}`: not in `ember {sub} --help`"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} flags checked");
}

#[test]
fn readme_links_and_layout_paths_exist() {
    let readme = readme();
    let mut checked = 0;
    // Markdown links to files of this repository.
    for part in readme.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        assert!(
            root().join(target).exists(),
            "README links to missing {target}"
        );
        checked += 1;
    }
    // The layout block: the first word of each line that names a path.
    let layout = readme
        .split("## Layout")
        .nth(1)
        .expect("README has a Layout section");
    for line in layout.lines() {
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        if word.ends_with('/') || word.ends_with(".toml") {
            assert!(
                root().join(word).exists(),
                "README's layout names missing {word}"
            );
            checked += 1;
        }
    }
    // Scripts named anywhere.
    for part in readme.split("scripts/").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        let name = name.trim_end_matches('.');
        if name.ends_with(".sh") || name.ends_with(".py") {
            assert!(
                root().join("scripts").join(name).exists(),
                "README names missing scripts/{name}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} paths checked");
}

#[test]
fn format_doc_states_the_written_version() {
    let doc = std::fs::read_to_string(root().join("docs/FORMAT.md")).unwrap();
    let (major, minor) = (ember_format::FORMAT_MAJOR, ember_format::FORMAT_MINOR);
    let title = doc.lines().next().unwrap();
    assert!(
        title.ends_with(&format!("version {major}.{minor}")),
        "docs/FORMAT.md says `{title}`; the writer writes {major}.{minor}"
    );
    let minor_row = doc
        .lines()
        .find(|l| l.starts_with("| 10 | u16 | minor |"))
        .expect("the header table's minor row");
    assert!(
        minor_row.contains(&format!("| {minor} ")) || minor_row.contains(&format!("| {minor}.")),
        "docs/FORMAT.md's minor row does not say {minor}: {minor_row}"
    );
}

/// "188,864" -> 188864 for the figures README writes with separators.
fn with_commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn firmware_memory_figures_are_what_inspect_reports() {
    let model = root().join("examples/firmware/model/tiny-q8_0.ember");
    let json = ember(&[
        "inspect",
        model.to_str().unwrap(),
        "--memory",
        "--ctx",
        "64",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let readme = readme();
    let claim = readme
        .split("`ember inspect --memory MODEL --ctx N` tells")
        .nth(1)
        .expect("README's memory paragraph")
        .split("\n\n")
        .next()
        .unwrap()
        .replace('\n', " ");
    for key in ["flash_bytes", "ram_bytes", "ram_bytes_prefill_batch"] {
        let n = v[key].as_u64().unwrap();
        assert!(
            claim.contains(&format!("{} bytes", with_commas(n)))
                || claim.contains(&format!("{} with", with_commas(n))),
            "README's memory paragraph lacks {key} = {}: {claim}",
            with_commas(n)
        );
    }
    assert_eq!(
        v["prefill_batch"].as_u64(),
        Some(32),
        "README says 32-token prefill batches"
    );
}

fn smollm2() -> Option<PathBuf> {
    let path = root().join(".cache/models/smollm2-135m-instruct.ember");
    let gguf = root().join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        Some(path)
    } else if gguf.exists() {
        Some(gguf)
    } else {
        None
    }
}

#[test]
fn readme_prompt_ids_are_smollm2s() {
    let Some(model) = smollm2() else {
        println!("SKIPPED: readme_prompt_ids_are_smollm2s: no SmolLM2 in .cache/models (scripts/fetch-models.sh)");
        return;
    };
    let readme = readme();
    let ids = readme
        .split("smollm2.ember --prompt-ids ")
        .nth(1)
        .expect("README's --prompt-ids example")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let json = ember(&[
        "tokenize",
        model.to_str().unwrap(),
        "Once upon a time",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let got: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        got.join(","),
        ids,
        "README's SmolLM2 --prompt-ids are not \"Once upon a time\""
    );
}
