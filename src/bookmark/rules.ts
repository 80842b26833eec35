/**
 * Bookmark rules, pure. The state of one job partition is:
 *  - `wm`, the watermark: every file with last-modified below `wm - maxBand` counts as done;
 *  - the band, the files committed inside it (last-modified >= `wm - maxBand`), kept compact in
 *    Redis (see band.ts) and checked in batches, never loaded whole; older entries are pruned, so
 *    the state does not grow with the number of files processed;
 *  - `leases`, files selected by a run that has not committed them yet (key → owner run id).
 *    A lease holds `wm` below its file, so a failed or killed run's files stay selectable.
 *
 * A file is new when its last-modified time is at or above the band's lower edge and the band
 * does not already hold it at that time (or later). A rewritten file has a newer time and is new
 * again; a deleted file simply no longer shows up.
 */
export interface PartitionView {
  /** Watermark in epoch ms, or null for a partition never committed. */
  wm: number | null;
  /** Band width in ms. */
  bandMs: number;
  /** Raised lower edge when the band reached maxFilesInBand (epoch ms), or null. */
  floor?: number | null;
  /**
   * Only for the full listing of a lexical job: the band edge at its previous full listing (null:
   * none recorded, nothing is lowered). The band is kept from there, so files the lexical runs
   * missed since are still told apart from those they committed (see docs/bookmark.md).
   */
  keep?: number | null;
  /** key → owner run id, for files leased by runs that are still alive. */
  liveLeases: ReadonlyMap<string, string>;
  /** key → owner run id, for files leased by runs that ended without committing them. */
  staleLeases?: ReadonlyMap<string, string>;
  /** Dead letters put back by `dead-letters retry`: new whatever the band says. */
  retry?: ReadonlySet<string>;
}

/** The band's lower edge: files older than this count as done. */
export function bandFloor(view: Pick<PartitionView, "wm" | "bandMs" | "floor">): number {
  const edge = view.wm === null ? Number.NEGATIVE_INFINITY : view.wm - view.bandMs;
  return view.floor === null || view.floor === undefined ? edge : Math.max(edge, view.floor);
}

/** The edge below which a run treats files as settled: the band edge, lowered to `keep` for the full listing of a lexical job (never below the cap's floor). */
export function selectionFloor(view: Pick<PartitionView, "wm" | "bandMs" | "floor" | "keep">): number {
  // A missing 'keep' lowers nothing: the band was pruned at the edge.
  if (view.keep === undefined || view.keep === null) return bandFloor(view);
  const wmEdge = view.wm === null ? Number.NEGATIVE_INFINITY : view.wm - view.bandMs;
  const lowered = Math.min(wmEdge, view.keep);
  return view.floor === null || view.floor === undefined ? lowered : Math.max(lowered, view.floor);
}

/**
 * Whether a bookmark state (a history snapshot of one partition) covers a file: below its edge,
 * or held in its band at that time or later. `pause --from A --to B` takes the files B's state
 * covers and A's does not.
 */
export function covers(
  state: { wm: number | null; floor: number | null; band: { holds(key: string, lastModified: number): boolean } } | undefined,
  bandMs: number,
  file: { key: string; lastModified: number },
): boolean {
  if (!state) return false;
  if (file.lastModified < bandFloor({ wm: state.wm, bandMs, floor: state.floor })) return true;
  return state.band.holds(file.key, file.lastModified);
}

export type Verdict = "new" | "done" | "below-band" | "leased";

/** Whether the band must be asked about a file (it is not below the band edge, nor a retried dead letter). */
export function needsBandCheck(view: PartitionView, file: { key: string; lastModified: number }): boolean {
  return view.retry?.has(file.key) !== true && file.lastModified >= selectionFloor(view);
}

/**
 * Decides whether one listed file is to be processed by run `runId`. `inBand`: the band holds the
 * file at its last-modified time or later (asked only when {@link needsBandCheck}).
 */
export function classify(view: PartitionView, file: { key: string; lastModified: number }, runId: string, inBand: boolean): Verdict {
  const retried = view.retry?.has(file.key) === true;
  if (!retried && file.lastModified < selectionFloor(view)) return "below-band";
  if (!retried && inBand) return "done";
  const owner = view.liveLeases.get(file.key);
  if (owner !== undefined && owner !== runId) return "leased";
  return "new";
}

/**
 * The watermark after a commit: it follows the highest committed time but never passes a file
 * still leased (minus one ms), and it never moves back.
 */
export function nextWatermark(prevWm: number | null, hwm: number, minLeased: number | null): number {
  const candidate = minLeased === null ? hwm : Math.min(hwm, minLeased - 1);
  return prevWm === null ? candidate : Math.max(prevWm, candidate);
}
