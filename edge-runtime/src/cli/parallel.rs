//! Scoring a batch of frames on several threads, results in input order.
//!
//! A gate scores from any number of threads at once, each with its own scratch: the plan is
//! read-only. A batch is cut into one contiguous run per thread, so each thread's results
//! come back in order and are joined without sorting; the caller reads the next batch while
//! the output of this one is written, and memory stays at one batch whatever the input.

use std::vec::Vec;

/// `score(item, scratch)` for every item, on as many threads as there are scratches (at
/// least one); the results in the items' order.
pub fn score_in_order<T, R, F>(items: &[T], scratches: &mut [Vec<f32>], score: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T, &mut [f32]) -> R + Sync,
{
    let threads = scratches.len().clamp(1, items.len().max(1));
    if threads == 1 {
        let Some(scratch) = scratches.first_mut() else {
            return Vec::new();
        };
        return items.iter().map(|item| score(item, scratch)).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let score = &score;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .zip(scratches.iter_mut())
            .map(|(chunk, scratch)| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|item| score(item, scratch))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for handle in handles {
            // A panic in a scoring thread is a bug; propagate it as the thread's own.
            match handle.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::vec;

    use super::*;

    #[test]
    fn results_keep_the_input_order_on_any_number_of_threads() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 3, 7, 2000] {
            let mut scratches = vec![vec![0f32; 4]; threads];
            let results = score_in_order(&items, &mut scratches, |item, scratch| {
                // Each thread's scratch is its own: write, then read back.
                scratch[0] = *item as f32;
                scratch[0] as u32 * 2
            });
            assert_eq!(results, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        let none: Vec<u32> = score_in_order(&[] as &[u32], &mut [vec![0f32; 1]], |i, _| *i);
        assert!(none.is_empty());
    }
}
