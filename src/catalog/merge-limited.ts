/**
 * Streams the items of several async sequences, at most `limit` of them open at once, in the
 * order the items arrive (not the order of the sequences). `open` is called for the next source
 * when a slot frees, so only `limit` sequences (and one pending item each) are in memory. An
 * error in any sequence ends the merge with that error; the consumer stopping early closes the
 * open sequences.
 */
export async function* mergeLimited<S, T>(
  sources: AsyncIterable<S> | Iterable<S>,
  limit: number,
  open: (s: S) => AsyncIterable<T>,
): AsyncGenerator<T> {
  const src: AsyncIterator<S> | Iterator<S> =
    Symbol.asyncIterator in sources ? (sources as AsyncIterable<S>)[Symbol.asyncIterator]() : (sources as Iterable<S>)[Symbol.iterator]();
  type Next = { iter: AsyncIterator<T>; r: IteratorResult<T> };
  const pending = new Map<AsyncIterator<T>, Promise<Next>>();
  let exhausted = false;
  const pull = (iter: AsyncIterator<T>) => {
    const p = iter.next().then((r) => ({ iter, r }));
    p.catch(() => undefined); // reported through Promise.race below
    pending.set(iter, p);
  };
  const refill = async () => {
    while (!exhausted && pending.size < Math.max(1, limit)) {
      const n = await src.next();
      if (n.done) exhausted = true;
      else pull(open(n.value)[Symbol.asyncIterator]());
    }
  };
  try {
    await refill();
    while (pending.size > 0) {
      const { iter, r } = await Promise.race(pending.values());
      if (r.done) {
        pending.delete(iter);
        await refill();
        continue;
      }
      pull(iter);
      yield r.value;
    }
  } finally {
    for (const iter of pending.keys()) void Promise.resolve(iter.return?.()).catch(() => undefined);
    if (!exhausted) void Promise.resolve(src.return?.()).catch(() => undefined);
  }
}
