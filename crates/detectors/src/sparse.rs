//! Judging a segment's pictures without scoring every one: a verdict that lasts (blur,
//! block corruption) is the same on neighbouring pictures, so one in `stride` is scored,
//! and only where two scored pictures disagree are the pictures between them scored too.
//! Every picture gets a score, its run's edges are exact to the picture, and steady
//! content costs one score in `stride`.

/// Every picture's score, from `score(i)` on one picture in `stride`, the last, and every
/// picture between two scored ones that `agree` says differ; a picture between two that
/// agree takes the nearer one's score.
pub fn sparse_scores<T: Copy>(
    n: usize,
    stride: usize,
    mut score: impl FnMut(usize) -> T,
    agree: impl Fn(T, T) -> bool,
) -> Vec<T> {
    let mut scores: Vec<Option<T>> = vec![None; n];
    let mut anchors: Vec<usize> = (0..n).step_by(stride.max(1)).collect();
    if n > 0 && anchors.last() != Some(&(n - 1)) {
        anchors.push(n - 1);
    }
    for &i in &anchors {
        scores[i] = Some(score(i));
    }
    for pair in anchors.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (Some(sa), Some(sb)) = (scores[a], scores[b]) else {
            continue;
        };
        let steady = agree(sa, sb);
        for (i, slot) in scores.iter_mut().enumerate().take(b).skip(a + 1) {
            *slot = Some(match (steady, i - a <= b - i) {
                (true, true) => sa,
                (true, false) => sb,
                (false, _) => score(i),
            });
        }
    }
    scores.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stretches_cost_one_score_in_stride_and_changes_are_exact() {
        // Pictures 0..20 with a change of verdict between 9 and 10.
        let truth = |i: usize| i >= 10;
        let mut scored = Vec::new();
        let scores = sparse_scores(
            20,
            4,
            |i| {
                scored.push(i);
                truth(i)
            },
            |a, b| a == b,
        );
        assert_eq!(scores, (0..20).map(truth).collect::<Vec<_>>());
        // Anchors 0, 4, 8, 12, 16, 19, and 9, 10, 11 between the disagreeing 8 and 12.
        scored.sort_unstable();
        assert_eq!(scored, [0, 4, 8, 9, 10, 11, 12, 16, 19]);
        assert!(sparse_scores(0, 4, |_| 1, |a, b| a == b).is_empty());
        assert_eq!(sparse_scores(1, 4, |_| 7, |a, b| a == b), [7]);
    }
}
