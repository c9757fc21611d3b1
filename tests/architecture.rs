//! The workspace's shape, as ARCHITECTURE.md states it: the crates in
//! their dependency order (lowest first), every dependency between them
//! pointing down, and Apache's small helpers defined once.

use std::collections::BTreeMap;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The crate order of ARCHITECTURE.md: the numbered list of
/// `**htgate-…**` entries under "Code map".
fn documented_order() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is readable");
    let map = text
        .split("\n## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a Code map section");
    let mut order = Vec::new();
    for line in map.lines() {
        let Some((num, rest)) = line.split_once(". ") else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(name) = rest
            .strip_prefix("**`")
            .and_then(|r| r.split_once("`**"))
            .map(|(n, _)| n.to_string())
        {
            order.push(name);
        }
    }
    order
}

/// Each workspace package and the workspace packages it depends on (any
/// kind: normal, dev, build).
fn workspace_edges() -> BTreeMap<String, Vec<(String, String)>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: Vec<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let mut edges = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let deps = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let dep = d["name"].as_str()?.to_string();
                let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                names.contains(&dep).then_some((dep, kind))
            })
            .collect();
        edges.insert(name, deps);
    }
    edges
}

#[test]
fn crates_depend_only_on_crates_below_them() {
    let order = documented_order();
    let edges = workspace_edges();
    let mut documented = order.clone();
    documented.sort();
    let mut actual: Vec<String> = edges.keys().cloned().collect();
    actual.sort();
    assert_eq!(
        documented, actual,
        "ARCHITECTURE.md's code map must list every workspace crate once"
    );
    let rank = |n: &str| order.iter().position(|o| o == n).unwrap_or(usize::MAX);
    let mut upward = Vec::new();
    for (krate, deps) in &edges {
        for (dep, kind) in deps {
            if rank(dep) >= rank(krate) {
                upward.push(format!("{krate} -> {dep} ({kind})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "dependencies that do not point down the order of ARCHITECTURE.md: {upward:?}"
    );
}

/// Every `.rs` file of the workspace's crates and binary.
fn sources() -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join("src"), &mut out);
    walk(&Path::new(ROOT).join("crates"), &mut out);
    out
}

#[test]
fn apaches_small_helpers_are_defined_once() {
    let helpers = [
        "fn fnmatch(",
        "fn atoi(",
        "fn unescape_url(",
        "fn escape_html(",
        "fn unix_now(",
        "fn base64(",
    ];
    let files = sources();
    for helper in helpers {
        let defs: Vec<String> = files
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(f).ok()?;
                let n = text.matches(helper).count();
                (n > 0).then(|| format!("{} ({n})", f.display()))
            })
            .collect();
        let total: usize = defs
            .iter()
            .filter_map(|d| {
                d.rsplit_once('(')?
                    .1
                    .trim_end_matches(')')
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        assert_eq!(total, 1, "`{helper}` must be defined once: {defs:?}");
    }
}

#[test]
fn no_source_file_is_over_1500_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            // Tests are allowed to be long: one file per subject.
            !name.ends_with("tests.rs") && !name.contains("/tests/")
        })
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).ok()?.lines().count();
            (lines > 1500).then(|| format!("{} ({lines})", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 1,500 lines: {long:?}");
}

/// The binary's features, as cargo resolves them for a release build.
#[test]
fn test_scaffolding_never_reaches_the_binary() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "htgate",
            "-e",
            "normal,features",
            "--prefix",
            "none",
            "--features",
            "etcd",
        ])
        .current_dir(ROOT)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("etcd-client"),
        "the etcd back end is in: {tree}"
    );
    assert!(
        !tree.contains("test-support"),
        "a crate's test-support feature is on in the binary's build"
    );
}

/// Every path ARCHITECTURE.md names exists, and the functions its
/// `RewriteCond -f` walk-through names are where it says.
#[test]
fn architecture_md_points_at_real_code() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is readable");
    let mut missing = Vec::new();
    for quoted in doc.split('`').skip(1).step_by(2) {
        let is_path =
            (quoted.starts_with("crates/") || quoted.starts_with("src/")) && !quoted.contains(' ');
        if is_path && !Path::new(ROOT).join(quoted).exists() {
            missing.push(quoted.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "paths in ARCHITECTURE.md that do not exist: {missing:?}"
    );
    let read = |p: &str| std::fs::read_to_string(Path::new(ROOT).join(p)).unwrap_or_default();
    for (file, needle) in [
        (
            "crates/engine/src/compile/mod_rewrite.rs",
            "\"RewriteCond\"",
        ),
        (
            "crates/engine/src/rewrite.rs",
            "\"-f\" => Some(CondKind::FileRegular)",
        ),
        (
            "crates/engine/src/rewrite_exec.rs",
            "fn apply_rewrite_cond(",
        ),
        (
            "crates/engine/src/rewrite_exec.rs",
            "CondKind::FileRegular => self.test_path(",
        ),
        ("crates/engine/src/stat_cache.rs", "pub fn test_path("),
        (
            "crates/engine/src/stat_cache.rs",
            "pub fn read(path: &str) -> PathStat",
        ),
    ] {
        assert!(read(file).contains(needle), "{file} no longer has {needle}");
    }
}

/// Every source file README.md, SECURITY.md and docs/ name exists (they
/// point readers at the code that does what they say).
#[test]
fn docs_name_source_files_that_exist() {
    let mut docs = vec!["README.md".to_string(), "SECURITY.md".to_string()];
    if let Ok(entries) = std::fs::read_dir(Path::new(ROOT).join("docs")) {
        for e in entries.flatten() {
            docs.push(format!("docs/{}", e.file_name().to_string_lossy()));
        }
    }
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(Path::new(ROOT).join(doc)).unwrap_or_default();
        for quoted in text.split('`').skip(1).step_by(2) {
            let is_source = quoted.ends_with(".rs")
                && quoted.contains('/')
                && !quoted.contains(' ')
                && quoted
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b"_/.".contains(&b));
            if is_source && !Path::new(ROOT).join(quoted).exists() {
                missing.push(format!("{doc}: {quoted}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "source files named in the docs that do not exist: {missing:?}"
    );
}
