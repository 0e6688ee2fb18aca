//! `nearest`: "did you mean" suggestions for misspelt layer, argument and activation names.

/// Up to three of `candidates` close to `typo` by edit distance, closest first.
pub fn nearest<'a>(typo: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let lower = typo.to_lowercase();
    let limit = (typo.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

/// "; did you mean `a` or `b`?" (empty when there is nothing close).
pub fn did_you_mean<'a>(typo: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let near = nearest(typo, candidates);
    match near.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => {
            let quoted: Vec<String> = many.iter().map(|c| format!("`{c}`")).collect();
            let (last, rest) = quoted.split_last().map(|(l, r)| (l.clone(), r.join(", "))).unwrap_or_default();
            format!("; did you mean {rest} or {last}?")
        }
    }
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(nearest("Dnese", ["Dense", "Dropout", "Flatten"]), vec!["Dense"]);
        assert_eq!(nearest("rleu", ["relu", "elu", "selu", "tanh"])[0], "relu");
        assert!(nearest("xyzzy", ["Dense"]).is_empty());
        assert_eq!(did_you_mean("sigmod", ["sigmoid"]), "; did you mean `sigmoid`?");
    }
}
