//! Embeds every `rules/*.toml` file into the library, so the built-in rule pack ships inside the
//! binary and a new rule file needs no code change.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("detectors/rules must exist")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Path::new(&name)
                .extension()
                .is_some_and(|x| x == "toml")
                .then_some(name)
        })
        .collect();
    names.sort();
    let mut out = String::from(
        "/// Built-in rule files: (file name, TOML text).\npub(crate) static BUILTIN_RULE_FILES: &[(&str, &str)] = &[\n",
    );
    for name in &names {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            dir.join(name).display().to_string()
        )
        .expect("write to string");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin_rules.rs");
    std::fs::write(dest, out).expect("write builtin_rules.rs");
}
