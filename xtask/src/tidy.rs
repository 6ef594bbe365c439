//! Source rules every crate follows, checked by `cargo xtask tidy` and by a test.
//!
//! - `unsafe` code appears only in `netrunner-sys`, and every `unsafe` block
//!   there has a `// SAFETY:` comment directly above it (or above the
//!   statement that contains it).
//! - Every other crate root says `#![forbid(unsafe_code)]`.
//! - Every Rust file starts with a `//!` line saying what it is for.
//! - No stubs (`todo!`, `unimplemented!`) and no ignored tests.

use std::path::{Path, PathBuf};

/// The crate whose job is to hold all `unsafe` code.
const UNSAFE_HOME: &str = "netrunner-sys";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Strips a trailing `//` comment and string contents crudely enough for
/// keyword spotting: code lines are what matter.
fn code_part(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    line
}

fn opens_unsafe_block(code: &str) -> bool {
    // Built from parts so this file does not match itself.
    code.contains(&["unsafe", " {"].concat())
}

fn is_unsafe_item(code: &str) -> bool {
    let c = code.trim_start();
    c.starts_with("unsafe fn")
        || c.starts_with("pub unsafe fn")
        || c.starts_with("unsafe impl")
        || c.contains(" unsafe fn ")
}

fn has_safety_comment(lines: &[&str], index: usize) -> bool {
    // Walk up over the statement's own earlier lines (up to 3) and then the
    // contiguous comment block above.
    let mut i = index;
    let mut code_lines_skipped = 0;
    while i > 0 {
        i -= 1;
        let t = lines[i].trim_start();
        if t.starts_with("// SAFETY:") {
            return true;
        }
        if t.starts_with("//") {
            continue;
        }
        if code_lines_skipped < 3 && !t.is_empty() && !t.ends_with(';') && !t.ends_with('}') {
            code_lines_skipped += 1;
            continue;
        }
        return false;
    }
    false
}

/// Every rule violation under `root`, as `path:line: message`.
pub fn check(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let stub_macros = [["to", "do!("].concat(), ["unimple", "mented!("].concat()];
    let ignore_attr = ["#[", "ignore"].concat();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        let in_sys = rel_str.starts_with(&format!("{UNSAFE_HOME}/"));
        let is_tidy_itself = rel_str == "xtask/src/tidy.rs";

        if !lines.first().is_some_and(|l| l.starts_with("//!")) {
            problems.push(format!(
                "{rel_str}:1: file must start with a `//!` line saying what it is for"
            ));
        }
        let is_crate_root = rel_str.ends_with("src/lib.rs")
            || rel_str.ends_with("src/main.rs")
            || rel_str.contains("/src/bin/");
        if is_crate_root && !in_sys && !text.contains("#![forbid(unsafe_code)]") {
            problems.push(format!(
                "{rel_str}:1: crate root must have #![forbid(unsafe_code)]"
            ));
        }
        for (n, line) in lines.iter().enumerate() {
            let code = code_part(line);
            if code.is_empty() || is_tidy_itself {
                continue;
            }
            let unsafe_here = opens_unsafe_block(code) || is_unsafe_item(code);
            if unsafe_here && !in_sys {
                problems.push(format!(
                    "{rel_str}:{}: `unsafe` outside {UNSAFE_HOME}",
                    n + 1
                ));
            }
            if unsafe_here && in_sys && opens_unsafe_block(code) && !has_safety_comment(&lines, n) {
                problems.push(format!(
                    "{rel_str}:{}: `unsafe` block without a `// SAFETY:` comment",
                    n + 1
                ));
            }
            for m in &stub_macros {
                if code.contains(m.as_str()) {
                    problems.push(format!("{rel_str}:{}: stub macro `{m}`", n + 1));
                }
            }
            if code.trim_start().starts_with(&ignore_attr) {
                problems.push(format!("{rel_str}:{}: ignored test", n + 1));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let problems = check(root);
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn catches_unsafe_without_safety_comment() {
        let lines = ["fn f() {", "    let x = 1;", "    unsafe { g() };", "}"];
        assert!(!has_safety_comment(&lines, 2));
        let lines = [
            "fn f() {",
            "    // SAFETY: g has no preconditions.",
            "    unsafe { g() };",
            "}",
        ];
        assert!(has_safety_comment(&lines, 2));
        let lines = ["    // SAFETY: see above.", "    match unsafe { fork() } {"];
        assert!(has_safety_comment(&lines, 1));
        assert!(opens_unsafe_block("    let r = unsafe { x() };"));
        assert!(!opens_unsafe_block("    let r = safe_call();"));
        assert!(is_unsafe_item("pub unsafe fn danger() {}"));
    }
}
