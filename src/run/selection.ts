import type { BookmarkMode } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { BookmarkStore } from "../bookmark/store.js";
import type { PartitionView } from "../bookmark/rules.js";
import { bandFloor, covers } from "../bookmark/rules.js";
import type { PageFile } from "../planner/plan.js";
import type { Logger } from "../log.js";

/** Which of one listing page's files a run takes; `edgeOf` gives a partition's band edge as planned (once it was seen). */
export type NewFilter = ((files: readonly PageFile[]) => Promise<boolean[]>) & {
  edgeOf?: (partition: string) => number | undefined;
  /** Every partition seen so far → its band edge as planned. */
  edges?: () => Map<string, number>;
};

/** Indices of a page's files, per partition. */
function byPartition(files: readonly PageFile[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  files.forEach((f, i) => {
    const l = out.get(f.partition);
    if (l) l.push(i);
    else out.set(f.partition, [i]);
  });
  return out;
}

/**
 * Which listed files a run takes, page by page. `enable` and `pause`: what the bookmark does not
 * cover (and no other live run holds); the band is asked one page at a time. `disable`:
 * everything. `pause` with `from`/`to`: what the state after run `to` covers and the state after
 * run `from` does not (rebuilt from the history deltas).
 */
export async function selectionRule(
  store: BookmarkStore,
  mode: BookmarkMode,
  runId: string,
  bandMs: number,
  from: string | undefined,
  to: string | undefined,
  /** Filled with each partition's leases of ended runs on files the listing did not show (yet). */
  unseenStale: Map<string, Map<string, string>>,
  log?: Logger,
  /** The full listing of a lexical job: files below the edge but at or above `keep` are checked against the band. */
  o: { keep?: boolean } = {},
): Promise<NewFilter> {
  if ((from === undefined) !== (to === undefined)) {
    throw new ConfigError(`--from and --to go together: give both run ids or neither (got ${from ? `--from ${from}` : `--to ${to}`})`);
  }
  if (from !== undefined && mode !== "pause") {
    throw new ConfigError(`--from/--to need bookmark mode pause (got ${mode}); add --bookmark pause`);
  }
  if (mode === "disable") return async (files) => files.map(() => true);
  if (from !== undefined && to !== undefined) {
    const r = await store.rangeStates(from, to, bandMs);
    if (r.incomplete.length) {
      log?.warn("the history no longer holds every run these partitions' bands were built from: files of trimmed runs may be taken again", {
        partitions: r.incomplete,
      });
    }
    for (const id of [from, to]) {
      const c = await store.committedPartitions(id);
      const missed = c.planned.filter((p) => !c.partitions.includes(p));
      if (missed.length)
        log?.warn("a run of the range committed only some partitions: its state is the one after those commits", {
          runId: id,
          state: c.state,
          committed: c.partitions,
          notCommitted: missed,
        });
    }
    const changed = new Set(r.partitions);
    return async (files) =>
      files.map((f) => changed.has(f.partition) && covers(r.b[f.partition], bandMs, f) && !covers(r.a[f.partition], bandMs, f));
  }
  const views = new Map<string, PartitionView>();
  const filter: NewFilter = async (files) => {
    const out = files.map(() => false);
    for (const [p, idx] of byPartition(files)) {
      let view = views.get(p);
      if (!view) {
        view = await store.loadView(p, bandMs, { keep: o.keep });
        views.set(p, view);
        if (view.staleLeases?.size) unseenStale.set(p, new Map(view.staleLeases));
      }
      const unseen = unseenStale.get(p);
      const page = idx.map((i) => files[i]!);
      if (unseen) for (const f of page) unseen.delete(f.key);
      const fresh = await store.newFiles(p, view, page, runId);
      idx.forEach((i, j) => (out[i] = fresh[j]!));
    }
    return out;
  };
  filter.edges = () => new Map([...views].map(([p, v]) => [p, bandFloor(v)]));
  filter.edgeOf = (p) => {
    const v = views.get(p);
    return v ? bandFloor(v) : undefined;
  };
  return filter;
}
