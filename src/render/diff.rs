//! A small unified line diff (longest common subsequence, three lines of context), as
//! `diff -u` prints it, and its colouring.

use std::io::Write;

use super::io_err;
use super::palette::Palette;
use crate::error::Result;

/// Above this many cells the middle of the diff is shown as removed-then-added instead of
/// aligned (bounds memory; templates are far smaller).
const MAX_TABLE: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// Line operations turning `a` into `b`.
fn ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out = vec![Op::Same; prefix];
    out.extend(middle(am, bm));
    out.extend(vec![Op::Same; suffix]);
    out
}

fn middle(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    if (n + 1) * (m + 1) > MAX_TABLE {
        let mut out = vec![Op::Removed; n];
        out.extend(vec![Op::Added; m]);
        return out;
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(Op::Same);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            // Removals before additions, as diff -u prints them.
            out.push(Op::Removed);
            i += 1;
        } else {
            out.push(Op::Added);
            j += 1;
        }
    }
    out
}

/// A unified diff of two texts with `context` lines around each change; empty when equal.
pub fn unified(old: &str, new: &str, from: &str, to: &str, context: usize) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = ops(&a, &b);
    if ops.iter().all(|o| *o == Op::Same) {
        return String::new();
    }
    // Position of each op in both texts.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0, 0);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Same => (i, j) = (i + 1, j + 1),
            Op::Removed => i += 1,
            Op::Added => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|k| ops[*k] != Op::Same).collect();
    let mut out = format!("--- {from}\n+++ {to}\n");
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * context + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + context + 1).min(ops.len());
        hunk(&mut out, &ops[start..end], &pos[start..end], &a, &b);
        k += 1;
    }
    out
}

fn hunk(out: &mut String, ops: &[Op], pos: &[(usize, usize)], a: &[&str], b: &[&str]) {
    let old_len = ops.iter().filter(|o| **o != Op::Added).count();
    let new_len = ops.iter().filter(|o| **o != Op::Removed).count();
    // diff -u: a range of length 0 starts at the line before it.
    let start = |first: usize, len: usize| if len == 0 { first } else { first + 1 };
    out.push_str(&format!(
        "@@ -{},{old_len} +{},{new_len} @@\n",
        start(pos[0].0, old_len),
        start(pos[0].1, new_len)
    ));
    for (op, (i, j)) in ops.iter().zip(pos) {
        let line = match op {
            Op::Same => format!(" {}", a[*i]),
            Op::Removed => format!("-{}", a[*i]),
            Op::Added => format!("+{}", b[*j]),
        };
        out.push_str(&line);
        out.push('\n');
    }
}

/// Writes a unified diff, coloured when the palette is: removals red, additions green.
pub fn write_coloured<W: Write>(out: &mut W, diff: &str, p: &Palette) -> Result<()> {
    for line in diff.lines() {
        let escaped = super::term::escape(line);
        let line = escaped.as_ref();
        let shown = if line.starts_with("---") || line.starts_with("+++") {
            p.bold(line)
        } else if line.starts_with("@@") {
            p.dim(line)
        } else if line.starts_with('-') {
            p.bad(line)
        } else if line.starts_with('+') {
            p.good(line)
        } else {
            line.to_string()
        };
        writeln!(out, "{shown}").map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y", 3), "");
    }

    #[test]
    fn one_change_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified(old, new, "live", "new", 2),
            "--- live\n+++ new\n@@ -3,5 +3,5 @@\n 3\n 4\n-5\n+five\n 6\n 7\n"
        );
    }

    #[test]
    fn distant_changes_make_two_hunks_and_insertions_count() {
        let lines: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
        let old = lines.join("\n") + "\n";
        let mut changed = lines.clone();
        changed[1] = "two".into();
        changed.insert(18, "new".into());
        let new = changed.join("\n") + "\n";
        let d = unified(&old, &new, "a", "b", 1);
        let hunks: Vec<&str> = d.lines().filter(|l| l.starts_with("@@")).collect();
        assert_eq!(hunks, vec!["@@ -1,3 +1,3 @@", "@@ -18,2 +18,3 @@"], "{d}");
        assert!(d.contains("-2\n+two\n"));
        assert!(d.contains(" 18\n+new\n 19\n"));
    }

    #[test]
    fn pure_insertion_and_deletion() {
        assert_eq!(
            unified("", "a\n", "x", "y", 3),
            "--- x\n+++ y\n@@ -0,0 +1,1 @@\n+a\n"
        );
        assert_eq!(
            unified("a\nb\n", "a\n", "x", "y", 3),
            "--- x\n+++ y\n@@ -1,2 +1,1 @@\n a\n-b\n"
        );
    }

    #[test]
    fn colour_only_when_enabled() {
        let mut plain = Vec::new();
        write_coloured(&mut plain, "-a\n+b\n", &Palette::new(false)).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), "-a\n+b\n");
        let mut coloured = Vec::new();
        write_coloured(&mut coloured, "-a\n+b\n", &Palette::new(true)).unwrap();
        assert!(String::from_utf8(coloured).unwrap().contains("\u{1b}["));
    }
}
