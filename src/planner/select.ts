import type { Bound } from "../config/bounds.js";
import { MaxHeap } from "./heap.js";

export interface Candidate {
  key: string;
  size: number;
  lastModified: number;
}

/** Selection order: oldest first by last-modified time, then by key, so a run is deterministic. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.lastModified !== b.lastModified) return a.lastModified - b.lastModified;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Streaming bounded selection. Offer candidates in any order; `result()` returns the longest
 * prefix of all offered candidates (in selection order) that fits the bound. With `boundedSize`,
 * a lone file larger than the bound is taken on its own when it is the oldest, so the backlog
 * always moves. Memory holds only the current selection (it grows with the bound, never with the
 * number of candidates offered), and each offer costs O(log n).
 */
export class BoundedSelector<T extends Candidate = Candidate> {
  private readonly heap = new MaxHeap<T>(compareCandidates);
  private selectedBytes = 0;
  private cut: T | undefined;
  /** Every candidate offered, selected or not. */
  offeredFiles = 0;
  offeredBytes = 0;
  /** The oldest candidate offered (for backlog age). */
  oldest: T | undefined;

  constructor(private readonly bound: Bound) {}

  offer(c: T): void {
    this.offeredFiles++;
    this.offeredBytes += c.size;
    if (!this.oldest || compareCandidates(c, this.oldest) < 0) this.oldest = c;
    if (this.bound.kind === "files") {
      if (this.heap.size < this.bound.limit) {
        this.heap.push(c);
      } else if (compareCandidates(c, this.heap.peek()!) < 0) {
        this.heap.pop();
        this.heap.push(c);
      }
      return;
    }
    // Bytes: the selection is the longest prefix (in selection order) within the bound. `cut` is
    // the first candidate that did not fit; nothing after it can be selected, whatever its size.
    if (this.cut && compareCandidates(c, this.cut) > 0) return;
    this.heap.push(c);
    this.selectedBytes += c.size;
    while (this.selectedBytes > this.bound.limit && this.heap.size > 1) {
      const dropped = this.heap.pop()!;
      this.selectedBytes -= dropped.size;
      this.cut = dropped;
    }
  }

  /** The selection, oldest first. */
  result(): { selected: T[]; files: number; bytes: number; remainingFiles: number; remainingBytes: number } {
    const selected = this.heap.toArray().sort(compareCandidates);
    const bytes = selected.reduce((s, c) => s + c.size, 0);
    return {
      selected,
      files: selected.length,
      bytes,
      remainingFiles: this.offeredFiles - selected.length,
      remainingBytes: this.offeredBytes - bytes,
    };
  }
}
