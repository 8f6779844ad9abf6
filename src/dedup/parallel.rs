//! Work spread over the machine's cores with scoped threads, results kept in order (the dedup
//! index's searches are data-parallel loops over clips; no thread pool crate for that).

/// `f` over `items` on every core, in order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    parallel_filter_map(items, |item| Some(f(item)))
}

/// The `Some` results of `f` over `items` on every core, in order; only what passes is kept
/// (a million candidate pairs cost no memory for the ones that do not match).
pub fn parallel_filter_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Option<R> + Sync,
) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().filter_map(&f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            out.append(&mut handle.join().expect("a dedup worker panicked"));
        }
        out
    })
}
