import type { BookmarkMode } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { BookmarkStore, PartitionState } from "../bookmark/store.js";
import { classify, covers } from "../bookmark/rules.js";

/**
 * Which listed files a run takes, per partition. `enable` and `pause`: what the bookmark does not
 * cover (and no other live run holds). `disable`: everything. `pause` with `from`/`to`: what the
 * state after run `to` covers and the state after run `from` does not.
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
): Promise<(partition: string) => Promise<(f: { key: string; lastModified: number }) => boolean>> {
  if ((from === undefined) !== (to === undefined)) {
    throw new ConfigError(`--from and --to go together: give both run ids or neither (got ${from ? `--from ${from}` : `--to ${to}`})`);
  }
  if (from !== undefined && mode !== "pause") {
    throw new ConfigError(`--from/--to need bookmark mode pause (got ${mode}); add --bookmark pause`);
  }
  if (mode === "disable") return async () => () => true;
  if (from !== undefined && to !== undefined) {
    const r = await store.rangeStates(from, to);
    const changed = new Set(r.partitions);
    const asView = (v: PartitionState | undefined) => (v ? { wm: v.wm, floor: v.floor, band: new Map(v.band) } : undefined);
    return async (p) => {
      if (!changed.has(p)) return () => false;
      const a = asView(r.a[p]);
      const b = asView(r.b[p]);
      return (f) => covers(b, bandMs, f) && !covers(a, bandMs, f);
    };
  }
  return async (p) => {
    const view = await store.loadView(p, bandMs);
    const unseen = new Map(view.staleLeases);
    if (unseen.size) unseenStale.set(p, unseen);
    return (f) => {
      unseen.delete(f.key);
      return classify(view, f, runId) === "new";
    };
  };
}
