//! Groups of duplicates from the matching pairs (their union: a clip matching any member is
//! in the group), and the one clip each group keeps: the longest, then the one with the most
//! motion, then the first by clip id. Every rule is a property of the clips alone, so the
//! groups are the same however the clips were batched.
use serde::{Deserialize, Serialize};

use super::clusters::dot;
use super::index::{By, Entry};
use crate::clips::signature::similarity;
use crate::export::error::ExportError;

/// One line of `duplicates.jsonl`: a group of two or more clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's number, from 0, in the order of the kept clips' ids.
    pub group: usize,
    /// The id of the clip kept.
    pub kept: String,
    /// Every member, the kept one first, then by id.
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: String,
    /// The member's signature similarity to the kept clip (`--by hash` or `both`; 1 for the
    /// kept one, below the threshold for a member joined through another member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// The cosine of its embedding and the kept clip's (`--by embedding` or `both`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f64>,
}

/// What a group's members are compared to the kept clip by.
pub struct Measures<'a> {
    pub by: By,
    /// `[entries, dim]` (embedding indexes).
    pub embeddings: &'a [f32],
    pub dim: usize,
}

/// The groups that the `pairs` (indexes into `entries`) make.
pub fn groups(entries: &[Entry], pairs: &[(u32, u32)], measures: &Measures) -> Vec<Group> {
    let mut parent: Vec<u32> = (0..entries.len() as u32).collect();
    fn root(parent: &mut [u32], mut i: u32) -> u32 {
        while parent[i as usize] != i {
            let up = parent[parent[i as usize] as usize];
            parent[i as usize] = up;
            i = up;
        }
        i
    }
    for &(a, b) in pairs {
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
    let mut by_root: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for i in 0..entries.len() as u32 {
        let r = root(&mut parent, i);
        by_root.entry(r).or_default().push(i as usize);
    }
    let mut out: Vec<Group> = by_root
        .into_values()
        .filter(|members| members.len() > 1)
        .map(|members| group_of(entries, members, measures))
        .collect();
    out.sort_by(|a, b| a.kept.cmp(&b.kept));
    for (n, group) in out.iter_mut().enumerate() {
        group.group = n;
    }
    out
}

/// The group of `members` (two or more), its kept clip chosen.
fn group_of(entries: &[Entry], mut members: Vec<usize>, measures: &Measures) -> Group {
    let kept = *members
        .iter()
        .max_by(|&&a, &&b| keep_order(&entries[a], &entries[b]))
        .expect("a group has members");
    members.sort_by(|&a, &b| {
        (a != kept)
            .cmp(&(b != kept))
            .then(entries[a].id.cmp(&entries[b].id))
    });
    Group {
        group: 0,
        kept: entries[kept].id.clone(),
        members: members
            .iter()
            .map(|&m| Member {
                id: entries[m].id.clone(),
                similarity: measures
                    .by
                    .hash()
                    .then(|| round4(similarity(&entries[m].phash, &entries[kept].phash))),
                cosine: (measures.by.embedding() && measures.dim > 0).then(|| {
                    let row =
                        |i: usize| &measures.embeddings[i * measures.dim..(i + 1) * measures.dim];
                    round4(f64::from(dot(row(m), row(kept))))
                }),
            })
            .collect(),
    }
}

/// Which of two clips a group would rather keep (`Greater`: `a`): longer, then more motion,
/// then the smaller id.
fn keep_order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    a.duration()
        .total_cmp(&b.duration())
        .then(a.motion.total_cmp(&b.motion))
        .then(b.id.cmp(&a.id))
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The clip ids a `duplicates.jsonl` leaves out: every member of a group but the kept one.
pub fn left_out(path: &std::path::Path) -> Result<std::collections::HashSet<String>, ExportError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    let mut out = std::collections::HashSet::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let group: Group = serde_json::from_str(line)
            .map_err(|e| ExportError::input(path, format!("line {}: {e}", i + 1)))?;
        if !group.members.iter().any(|m| m.id == group.kept) {
            return Err(ExportError::input(
                path,
                format!(
                    "line {}: the kept clip {} is not among the members",
                    i + 1,
                    group.kept
                ),
            ));
        }
        out.extend(
            group
                .members
                .into_iter()
                .map(|m| m.id)
                .filter(|id| *id != group.kept),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clips::signature::PHash;

    fn entry(id: &str, seconds: f64, motion: f64) -> Entry {
        Entry {
            id: id.into(),
            output: "out".into(),
            start_time: 0.0,
            end_time: seconds,
            motion,
            phash: vec![PHash(0xff)],
            probes: Vec::new(),
        }
    }

    #[test]
    fn the_union_of_pairs_is_a_group_and_the_rule_picks_its_kept_clip() {
        let entries = vec![
            entry("a", 2.0, 0.1),
            entry("b", 3.0, 0.1),
            entry("c", 3.0, 0.2),
            entry("d", 9.0, 0.0),
            entry("e", 1.0, 0.0),
            entry("f", 1.0, 0.0),
        ];
        // a-b, b-c: one group through b; e-f: a tie on length and motion; d alone.
        let measures = Measures {
            by: By::Hash,
            embeddings: &[],
            dim: 0,
        };
        let found = groups(&entries, &[(0, 1), (1, 2), (4, 5)], &measures);
        assert_eq!(found.len(), 2);
        // Longest of equals, then more motion: c.
        assert_eq!(found[0].kept, "c");
        let ids: Vec<&str> = found[0].members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(found[0].members[0].similarity, Some(1.0));
        assert_eq!(found[0].members[0].cosine, None);
        // A full tie: the first id.
        assert_eq!((found[1].group, found[1].kept.as_str()), (1, "e"));
    }
}
