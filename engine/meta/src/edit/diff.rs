//! The fewest edits that turn one value of a file into another, so that a form that rewrites
//! a whole object changes only the lines it must.
//!
//! Mappings are compared key by key (a removed key is a removal, a new key an insertion after
//! the key that precedes it in the new value); sequences of the same items in another order
//! become moves; otherwise their items are aligned on a longest common subsequence, the
//! unmatched ones in each gap paired up and compared in turn, the rest removed or inserted.
//! Anything else that differs is set whole.

use serde_json::Value;

use super::Edit;
use crate::source::escape_pointer;

/// The most item pairs two sequences are aligned over (a metadata file's lists are far
/// shorter; this bounds the work on any input).
const MAX_ALIGNED_PAIRS: usize = 250_000;

/// The edits that turn `old` into `new`, in the order they must be applied.
pub fn diff(old: &Value, new: &Value) -> Vec<Edit> {
    let mut edits = Vec::new();
    diff_at(String::new(), old, new, &mut edits);
    edits
}

fn diff_at(path: String, old: &Value, new: &Value, edits: &mut Vec<Edit>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) if !old_map.is_empty() => {
            for key in old_map.keys().filter(|key| !new_map.contains_key(*key)) {
                edits.push(Edit::Remove {
                    path: format!("{path}/{}", escape_pointer(key)),
                });
            }
            let mut previous: Option<&String> = None;
            for (key, value) in new_map {
                match old_map.get(key) {
                    Some(old_value) => {
                        diff_at(
                            format!("{path}/{}", escape_pointer(key)),
                            old_value,
                            value,
                            edits,
                        );
                    }
                    None => edits.push(Edit::Insert {
                        path: path.clone(),
                        key: key.clone(),
                        value: value.clone(),
                        after: previous.cloned(),
                    }),
                }
                previous = Some(key);
            }
        }
        (Value::Array(old_items), Value::Array(new_items)) if !old_items.is_empty() => {
            diff_sequence(&path, old_items, new_items, edits);
        }
        _ => edits.push(Edit::Set {
            path,
            value: new.clone(),
        }),
    }
}

fn diff_sequence(path: &str, old: &[Value], new: &[Value], edits: &mut Vec<Edit>) {
    // Finding moves and the alignment are quadratic: a sequence too long for it is set whole.
    if old.len().saturating_mul(new.len()) > MAX_ALIGNED_PAIRS {
        edits.push(Edit::Set {
            path: path.to_owned(),
            value: Value::Array(new.to_vec()),
        });
        return;
    }
    if old.len() == new.len() && is_permutation(old, new) {
        let mut current: Vec<&Value> = old.iter().collect();
        for (index, wanted) in new.iter().enumerate() {
            if current[index] == wanted {
                continue;
            }
            let Some(from) = (index + 1..current.len()).find(|&at| current[at] == wanted) else {
                continue;
            };
            let item = current.remove(from);
            current.insert(index, item);
            edits.push(Edit::MoveItem {
                path: path.to_owned(),
                from,
                to: index,
            });
        }
        return;
    }
    // Pairs (old index, new index) of items kept, in order: matched equal items, then the
    // unmatched ones of each gap paired up (they are compared, not replaced).
    let matched = longest_common_subsequence(old, new);
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut old_next = 0;
    let mut new_next = 0;
    for &(old_index, new_index) in matched
        .iter()
        .chain(std::iter::once(&(old.len(), new.len())))
    {
        let gap = (old_index - old_next).min(new_index - new_next);
        for offset in 0..gap {
            kept.push((old_next + offset, new_next + offset));
        }
        if old_index < old.len() {
            kept.push((old_index, new_index));
        }
        old_next = old_index + 1;
        new_next = new_index + 1;
    }
    for index in (0..old.len()).rev() {
        if !kept.iter().any(|&(old_index, _)| old_index == index) {
            edits.push(Edit::Remove {
                path: format!("{path}/{index}"),
            });
        }
    }
    for (index, value) in new.iter().enumerate() {
        if !kept.iter().any(|&(_, new_index)| new_index == index) {
            edits.push(Edit::InsertItem {
                path: path.to_owned(),
                index,
                value: value.clone(),
            });
        }
    }
    for &(old_index, new_index) in &kept {
        diff_at(
            format!("{path}/{new_index}"),
            &old[old_index],
            &new[new_index],
            edits,
        );
    }
}

fn is_permutation(old: &[Value], new: &[Value]) -> bool {
    let mut unused: Vec<&Value> = old.iter().collect();
    for item in new {
        match unused.iter().position(|candidate| *candidate == item) {
            Some(at) => {
                unused.swap_remove(at);
            }
            None => return false,
        }
    }
    true
}

/// Index pairs of a longest common subsequence of equal items (quadratic: the caller bounds
/// the lengths).
fn longest_common_subsequence(old: &[Value], new: &[Value]) -> Vec<(usize, usize)> {
    let (rows, columns) = (old.len(), new.len());
    let mut lengths = vec![vec![0usize; columns + 1]; rows + 1];
    for i in (0..rows).rev() {
        for j in (0..columns).rev() {
            lengths[i][j] = if old[i] == new[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < rows && j < columns {
        if old[i] == new[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}
