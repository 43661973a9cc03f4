//! From written paths to cycles: each path resolved to the module it
//! names, each reference made an edge between the two sibling subtrees it
//! joins, and every strongly connected set of siblings reported as a
//! cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::tree::{ModPath, Reference, Tree};

/// A dependency between two siblings, and the first reference making it.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The sibling that depends.
    pub from: String,
    /// The sibling depended on.
    pub to: String,
    /// A path written in `from`'s subtree that names something in `to`'s.
    pub example: Reference,
    /// The module that path names.
    pub target: ModPath,
}

/// The edges among the children of each module.
pub type Siblings = BTreeMap<ModPath, BTreeMap<(String, String), Edge>>;

/// The module `path`, written in `from`, names: its longest prefix that
/// is a module, after `crate` or the `super`s.
pub fn resolve(tree: &Tree, from: &ModPath, path: &[String]) -> Option<ModPath> {
    let mut cur: ModPath = Vec::new();
    let mut rest = path;
    if rest.first().map(String::as_str) == Some("crate") {
        rest = &rest[1..];
    } else {
        cur = from.clone();
        while rest.first().map(String::as_str) == Some("super") {
            cur.pop()?;
            rest = &rest[1..];
        }
    }
    for seg in rest {
        let mut next = cur.clone();
        next.push(seg.clone());
        if !tree.modules.contains(&next) {
            break;
        }
        cur = next;
    }
    Some(cur)
}

/// Every reference as an edge between the siblings, under the two
/// modules' nearest common ancestor, that contain them; none where one
/// module contains the other.
pub fn sibling_edges(tree: &Tree) -> Siblings {
    let mut out = Siblings::new();
    for r in &tree.references {
        let Some(target) = resolve(tree, &r.from, &r.path) else {
            continue;
        };
        let common = r
            .from
            .iter()
            .zip(&target)
            .take_while(|(a, b)| a == b)
            .count();
        let (Some(a), Some(b)) = (r.from.get(common), target.get(common)) else {
            continue; // one contains the other
        };
        out.entry(r.from[..common].to_vec())
            .or_default()
            .entry((a.clone(), b.clone()))
            .or_insert_with(|| Edge {
                from: a.clone(),
                to: b.clone(),
                example: r.clone(),
                target: target.clone(),
            });
    }
    out
}

/// The cycles among one module's children: for each strongly connected
/// set of two or more, one cycle through it, as its edges in order.
pub fn cycles(edges: &BTreeMap<(String, String), Edge>) -> Vec<Vec<Edge>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default();
    }
    let mut found = Vec::new();
    for set in strongly_connected(&next) {
        if set.len() < 2 {
            continue;
        }
        let start = set.iter().next().copied().unwrap_or_default();
        if let Some(path) = path_back(&next, &set, start) {
            let hops = path
                .windows(2)
                .map(|w| edges[&(w[0].to_owned(), w[1].to_owned())].clone())
                .collect();
            found.push(hops);
        }
    }
    found
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(next: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<BTreeSet<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<BTreeSet<&'a str>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for &w in next.get(v).map(Vec::as_slice).unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                set.insert(w);
                if w == v {
                    break;
                }
            }
            s.out.push(set);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in next.keys() {
        if !s.index.contains_key(v) {
            visit(v, next, &mut s);
        }
    }
    s.out
}

/// A shortest path inside `set` from `start` back to itself (breadth
/// first), as the nodes visited, `start` at both ends.
fn path_back<'a>(
    next: &BTreeMap<&'a str, Vec<&'a str>>,
    set: &BTreeSet<&'a str>,
    start: &'a str,
) -> Option<Vec<&'a str>> {
    let mut came: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in next.get(v).map(Vec::as_slice).unwrap_or_default() {
            if !set.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start, v];
                let mut at = v;
                while at != start {
                    at = came[at];
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if !came.contains_key(w) && w != start {
                came.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    None
}
