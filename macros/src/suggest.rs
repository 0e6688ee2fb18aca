//! `nearest`, `did_you_mean`: "did you mean" suggestions for misspelt layer, argument,
//! activation and initializer names.

/// The candidates closest to `typo`, closest first, at most three; only the best-scoring
/// ones, so a clear winner is suggested alone.
///
/// The distance counts a swap of two neighbouring letters as one edit (`rleu` is one edit
/// from `relu`), ignores case, and ties go to the candidate of the closest length.
pub fn nearest<'a>(typo: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let lower = typo.to_lowercase();
    let typo_len = typo.chars().count();
    let limit = (typo_len / 3).max(2);
    let mut scored: Vec<(usize, usize, &str)> = candidates
        .into_iter()
        .filter(|c| *c != typo)
        .map(|c| {
            let len = c.chars().count();
            (
                distance(&lower, &c.to_lowercase()),
                len.abs_diff(typo_len),
                c,
            )
        })
        .filter(|(d, _, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.2 == b.2);
    let best = scored.first().map_or(0, |s| s.0);
    scored
        .into_iter()
        .take_while(|s| s.0 == best)
        .take(3)
        .map(|s| s.2)
        .collect()
}

/// "; did you mean `a` or `b`?" (empty when there is nothing close).
pub fn did_you_mean<'a>(typo: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let near = nearest(typo, candidates);
    let quoted: Vec<String> = near.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((only, [])) => format!("; did you mean {only}?"),
        Some((last, rest)) => format!("; did you mean {} or {last}?", rest.join(", ")),
    }
}

/// Optimal-string-alignment distance over chars: Levenshtein plus adjacent swaps.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for swaps), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            nearest("Dnese", ["Dense", "Dropout", "Flatten"]),
            vec!["Dense"]
        );
        assert_eq!(nearest("rleu", ["relu", "elu", "selu", "tanh"])[0], "relu");
        assert!(nearest("xyzzy", ["Dense"]).is_empty());
        assert_eq!(
            did_you_mean("sigmod", ["sigmoid"]),
            "; did you mean `sigmoid`?"
        );
    }

    #[test]
    fn swaps_count_once_and_ties_are_listed() {
        assert_eq!(distance("rleu", "relu"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(
            did_you_mean("rleu", ["relu", "elu", "selu"]),
            "; did you mean `relu`?"
        );
        assert_eq!(
            did_you_mean("xelu", ["elu", "selu", "gelu", "relu6"]),
            "; did you mean `gelu`, `selu` or `elu`?"
        );
        assert_eq!(
            did_you_mean("bais", ["bias", "axis", "alpha"]),
            "; did you mean `bias`?"
        );
    }
}
