//! A library crate's module tree, read from its `src/` files: every
//! module (inline or a file, `#[cfg(test)]` ones left out) and every
//! `crate::…` or `super::…` path written in its code, `use` trees
//! expanded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::lexer::{tokens, Kind, Token};

/// A module's path below the crate root (empty for the root).
pub type ModPath = Vec<String>;

/// A path written in a module's code.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The module the path is written in.
    pub from: ModPath,
    /// Its segments as written, from `crate` or the first `super`.
    pub path: Vec<String>,
    /// Where.
    pub file: PathBuf,
    /// Its line.
    pub line: usize,
}

/// The modules of a crate and the paths written in them.
#[derive(Debug, Default)]
pub struct Tree {
    /// Every module.
    pub modules: BTreeSet<ModPath>,
    /// Every `crate::`/`super::` path, in file order.
    pub references: Vec<Reference>,
}

impl Tree {
    /// Reads the crate whose root file is `root` (`src/lib.rs`).
    pub fn read(root: &Path) -> Result<Tree, String> {
        let mut tree = Tree::default();
        tree.modules.insert(Vec::new());
        let dir = root.parent().unwrap_or(Path::new(".")).to_owned();
        tree.file(root, Vec::new(), &dir)?;
        Ok(tree)
    }

    /// Reads `file`, the module `module`, whose child files are in
    /// `child_dir`.
    fn file(&mut self, file: &Path, module: ModPath, child_dir: &Path) -> Result<(), String> {
        let src = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let toks = tokens(&src);
        let mut r = Reader {
            toks: &toks,
            i: 0,
            file,
            tree: self,
            pending: Vec::new(),
        };
        r.items(module, child_dir, false)
    }
}

/// A child file's module: what `mod x;` or `#[path]` names.
struct PendingFile {
    path: PathBuf,
    module: ModPath,
    child_dir: PathBuf,
}

struct Reader<'a> {
    toks: &'a [Token],
    i: usize,
    file: &'a Path,
    tree: &'a mut Tree,
    pending: Vec<PendingFile>,
}

impl Reader<'_> {
    fn ident(&self, k: usize) -> Option<&str> {
        match self.toks.get(k).map(|t| &t.kind) {
            Some(Kind::Ident(s)) => Some(s),
            _ => None,
        }
    }

    fn punct(&self, k: usize, c: char) -> bool {
        matches!(self.toks.get(k).map(|t| &t.kind), Some(Kind::Punct(p)) if *p == c)
    }

    fn sep(&self, k: usize) -> bool {
        matches!(self.toks.get(k).map(|t| &t.kind), Some(Kind::PathSep))
    }

    /// Reads tokens of `module` until the `}` closing it (or the end of
    /// the file for a file module), then the child files it declared.
    fn items(&mut self, module: ModPath, child_dir: &Path, inline: bool) -> Result<(), String> {
        let mut depth = 0usize;
        let mut path_attr: Option<String> = None;
        while self.i < self.toks.len() {
            let k = self.i;
            if self.punct(k, '#') && (self.punct(k + 1, '[') || self.punct(k + 2, '[')) {
                let (is_test, path) = self.attribute();
                if is_test {
                    self.skip_item();
                } else if path.is_some() {
                    path_attr = path;
                }
                continue;
            }
            if self.punct(k, '{') {
                depth += 1;
            } else if self.punct(k, '}') {
                if depth == 0 && inline {
                    self.i += 1;
                    break;
                }
                depth = depth.saturating_sub(1);
            } else if self.ident(k) == Some("mod") && depth == 0 {
                if let Some(name) = self.ident(k + 1).map(str::to_owned) {
                    let mut child = module.clone();
                    child.push(name.clone());
                    self.tree.modules.insert(child.clone());
                    if self.punct(k + 2, ';') {
                        let base = self.file.parent().unwrap_or(Path::new("."));
                        let path = match path_attr.take() {
                            Some(p) if !inline => base.join(p),
                            Some(p) => child_dir.join(p),
                            None => {
                                let flat = child_dir.join(format!("{name}.rs"));
                                if flat.is_file() {
                                    flat
                                } else {
                                    child_dir.join(&name).join("mod.rs")
                                }
                            }
                        };
                        self.pending.push(PendingFile {
                            child_dir: child_dir.join(&name),
                            path,
                            module: child,
                        });
                        self.i = k + 3;
                        continue;
                    }
                    if self.punct(k + 2, '{') {
                        self.i = k + 3;
                        self.items(child, &child_dir.join(&name), true)?;
                        continue;
                    }
                }
            } else if self.ident(k) == Some("use") {
                self.i = k + 1;
                let mut leaves = Vec::new();
                self.use_tree(Vec::new(), &mut leaves);
                for (path, line) in leaves {
                    self.record(&module, path, line);
                }
                continue;
            } else if matches!(self.ident(k), Some("crate" | "super")) && self.sep(k + 1) {
                let dollar = k > 0 && self.punct(k - 1, '$');
                let (path, next) = self.path_at(k);
                if !dollar {
                    self.record(&module, path, self.toks[k].line);
                }
                self.i = next;
                continue;
            }
            if self.punct(k, ';') || self.punct(k, '{') || self.punct(k, '}') {
                path_attr = None;
            }
            self.i += 1;
        }
        let files = std::mem::take(&mut self.pending);
        for f in files {
            if !f.path.is_file() {
                return Err(format!(
                    "{}: module {} has no file {}",
                    self.file.display(),
                    f.module.join("::"),
                    f.path.display()
                ));
            }
            let child_dir = if f.path.file_name().is_some_and(|n| n == "mod.rs") {
                f.path.parent().unwrap_or(Path::new(".")).to_owned()
            } else {
                f.child_dir
            };
            self.tree.file(&f.path, f.module, &child_dir)?;
        }
        Ok(())
    }

    fn record(&mut self, module: &ModPath, path: Vec<String>, line: usize) {
        if matches!(path.first().map(String::as_str), Some("crate" | "super")) {
            self.tree.references.push(Reference {
                from: module.clone(),
                path,
                file: self.file.to_owned(),
                line,
            });
        }
    }

    /// At `#`: reads the attribute; whether it is `cfg(test)`, and its
    /// `path = "…"` if it is one.
    fn attribute(&mut self) -> (bool, Option<String>) {
        let mut k = self.i + 1;
        if self.punct(k, '!') {
            k += 1;
        }
        let open = k;
        let mut depth = 0usize;
        while k < self.toks.len() {
            if self.punct(k, '[') {
                depth += 1;
            } else if self.punct(k, ']') {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            k += 1;
        }
        let body = &self.toks[open + 1..k.min(self.toks.len())];
        self.i = k + 1;
        let is = |n: usize, s: &str| matches!(body.get(n).map(|t| &t.kind), Some(Kind::Ident(x)) if x == s);
        let is_test = body.len() == 4 && is(0, "cfg") && is(2, "test");
        let path = match (body.first().map(|t| &t.kind), body.get(2).map(|t| &t.kind)) {
            (Some(Kind::Ident(p)), Some(Kind::Str(s))) if p == "path" => Some(s.clone()),
            _ => None,
        };
        (is_test, path)
    }

    /// Skips the item after a `#[cfg(test)]`: to a `;` outside brackets,
    /// or the `}` that closes its first block.
    fn skip_item(&mut self) {
        let mut depth = 0usize;
        while self.i < self.toks.len() {
            let k = self.i;
            self.i += 1;
            if self.punct(k, '{') || self.punct(k, '(') || self.punct(k, '[') {
                depth += 1;
            } else if self.punct(k, '}') || self.punct(k, ')') || self.punct(k, ']') {
                depth = depth.saturating_sub(1);
                if depth == 0 && self.punct(k, '}') {
                    return;
                }
            } else if self.punct(k, ';') && depth == 0 {
                return;
            }
        }
    }

    /// The path starting at `k` (`a::b::c`): its segments, and the index
    /// after it.
    fn path_at(&self, mut k: usize) -> (Vec<String>, usize) {
        let mut segs = Vec::new();
        while let Some(s) = self.ident(k) {
            segs.push(s.to_owned());
            if !self.sep(k + 1) {
                return (segs, k + 1);
            }
            k += 2;
        }
        (segs, k)
    }

    /// Reads a use tree from `self.i` after `prefix`, into `leaves`, up to
    /// and past its end (`;`, `,` or `}` left for the caller).
    fn use_tree(&mut self, prefix: Vec<String>, leaves: &mut Vec<(Vec<String>, usize)>) {
        if self.sep(self.i) {
            self.i += 1; // `::a` (an external crate)
        }
        let line = self.toks.get(self.i).map_or(0, |t| t.line);
        let (segs, next) = self.path_at(self.i);
        self.i = next;
        let mut path = prefix;
        for s in segs {
            if s != "self" || path.is_empty() {
                path.push(s);
            }
        }
        if self.punct(self.i, '{') {
            self.i += 1;
            loop {
                if self.punct(self.i, '}') {
                    self.i += 1;
                    break;
                }
                self.use_tree(path.clone(), leaves);
                if self.punct(self.i, ',') {
                    self.i += 1;
                } else if self.punct(self.i, '}') {
                    self.i += 1;
                    break;
                } else if self.i >= self.toks.len() {
                    break;
                }
            }
        } else {
            if self.punct(self.i, '*') {
                self.i += 1;
            }
            if self.ident(self.i) == Some("as") {
                self.i += 2;
            }
            leaves.push((path, line));
        }
    }
}
