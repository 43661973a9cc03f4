//! The layering check: inside a library crate, module dependencies point
//! one way. It reads the crate's `src/` tree and fails on a cycle.
//!
//! The rules:
//!
//! * **What counts as a dependency**: a path written in a module's code
//!   that starts with `crate::` or `super::` (in `use` trees, expanded,
//!   and anywhere else in the code), resolved to the module it names: the
//!   longest prefix of the path that is a module. `crate::http::Router`
//!   names `http`, whatever `http` re-exports; `super::x` names the parent
//!   when `x` is an item of it. `self::…` and `$crate::…` are skipped.
//! * **Between whom**: a dependency of module A on module B is an edge
//!   between the two *sibling subtrees* under their nearest common
//!   ancestor: `crate::http::server` using `crate::core::Pbx` is the edge
//!   `http → core` among the crate root's children. When one contains the
//!   other (a child using its parent's re-export, a parent using its
//!   child) there is no edge.
//! * **What fails**: a cycle among the children of any one module, at any
//!   level (`a → b → a` under `crate`, or `x → y → z → x` under
//!   `crate::net`), printed with one path per hop and where it is written.
//! * **Not read**: `#[cfg(test)]` items (test modules may use anything),
//!   comments (doc comments and their examples too) and strings.
//!
//! A module's file is found as rustc finds it (`name.rs`, `name/mod.rs`,
//! `#[path]`); `mod` items inside functions and macro-made modules are not
//! seen.

mod graph;
mod lexer;
mod tree;

use std::fmt;
use std::path::Path;

pub use graph::Edge;
pub use tree::{ModPath, Reference};

/// A cycle among the children of one module.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// The module whose children depend on each other in a circle.
    pub parent: ModPath,
    /// The hops, in order; the last one leads back to the first's start.
    pub hops: Vec<Edge>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parent = display_path(&self.parent);
        let mut names: Vec<&str> = self.hops.iter().map(|h| h.from.as_str()).collect();
        if let Some(first) = self.hops.first() {
            names.push(&first.from);
        }
        writeln!(
            f,
            "cycle among the modules under {parent}: {}",
            names.join(" → ")
        )?;
        for h in &self.hops {
            writeln!(
                f,
                "    {} → {}: {}:{} `{}` (in {}, names {})",
                h.from,
                h.to,
                h.example.file.display(),
                h.example.line,
                h.example.path.join("::"),
                display_path(&h.example.from),
                display_path(&h.target),
            )?;
        }
        Ok(())
    }
}

fn display_path(p: &[String]) -> String {
    if p.is_empty() {
        "crate".to_owned()
    } else {
        format!("crate::{}", p.join("::"))
    }
}

/// The cycles in the crate whose root file is `root` (its `src/lib.rs`),
/// parents in module order; an error if a file cannot be read.
pub fn check(root: &Path) -> Result<Vec<Cycle>, String> {
    let tree = tree::Tree::read(root)?;
    let mut out = Vec::new();
    for (parent, edges) in graph::sibling_edges(&tree) {
        for hops in graph::cycles(&edges) {
            out.push(Cycle {
                parent: parent.clone(),
                hops,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::check;
    use std::path::Path;

    fn crate_in(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn cycles(dir: &Path) -> Vec<String> {
        check(&dir.join("src/lib.rs"))
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn a_planted_cycle_is_found_and_printed() {
        let dir = crate_in(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c;\npub use a::X;\n"),
            ("src/a.rs", "use crate::b::Y;\npub struct X;\n"),
            ("src/b/mod.rs", "mod inner;\npub use inner::Y;\n"),
            // The hop back is deep inside b, and through `super`.
            (
                "src/b/inner.rs",
                "pub struct Y;\nfn f() { let _ = super::super::c::z(); }\n",
            ),
            ("src/c.rs", "pub fn z() -> crate::a::X { crate::a::X }\n"),
        ]);
        let found = cycles(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("cycle among the modules under crate: a → b → c → a"),
            "{}",
            found[0]
        );
        assert!(
            found[0].contains("src/b/inner.rs:2 `super::super::c::z`"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn a_cycle_below_the_root_is_found_with_its_parent() {
        let dir = crate_in(&[
            ("src/lib.rs", "pub mod net;\n"),
            ("src/net/mod.rs", "mod x;\nmod y;\n"),
            ("src/net/x.rs", "use super::y::{self, Thing as T};\n"),
            (
                "src/net/y.rs",
                "pub struct Thing;\nmod deep { use crate::net::x; }\n",
            ),
        ]);
        let found = cycles(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("cycle among the modules under crate::net: x → y → x"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn one_way_dependencies_pass() {
        let dir = crate_in(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c;\npub use c::Z;\n"),
            // a → b → c, one way.
            ("src/a.rs", "use crate::b::Y;\n"),
            (
                "src/b/mod.rs",
                "mod inner;\npub use crate::c::Z as Y;\npub struct B;\n",
            ),
            // A child using its parent's item and re-export: no edge.
            (
                "src/b/inner.rs",
                "use super::{B, Y};\nfn f() -> crate::b::B { super::B }\n",
            ),
            (
                "src/c.rs",
                "//! Not code: crate::a::X\n\
                 /// Nor this: [`crate::a`]\n\
                 pub struct Z;\n\
                 const S: &str = \"crate::a::X\";\n\
                 #[cfg(test)]\nmod tests { use crate::a::*; }\n\
                 #[cfg(test)]\nuse crate::b::B;\n\
                 macro_rules! m { () => { $crate::a::X } }\n",
            ),
        ]);
        assert_eq!(cycles(dir.path()), Vec::<String>::new());
    }
}
