import type { Cluster, Redis } from "ioredis";
import { keys, type Keys } from "./keys.js";

/** One dead-lettered (or skipped) file as recorded. */
export interface FileRecord {
  key: string;
  lastModified: number;
  partition: string;
  runId: string;
  reason: string;
  at: string;
  /** Dead letters: the runs in which it failed. */
  runs?: number;
}

/**
 * A job's dead letters (files set aside after failing with file errors in
 * `bookmark.deadLetterAfterRuns` runs) and skipped files (archived storage class). Both are
 * hashes keyed by file key: listing streams them with HSCAN, so nothing is capped.
 */
export class DeadLetters {
  readonly k: Keys;
  constructor(
    private readonly r: Redis | Cluster,
    prefix: string,
    job: string,
  ) {
    this.k = keys(prefix, job);
  }

  async count(): Promise<{ deadLetters: number; skipped: number }> {
    const [d, s] = await Promise.all([this.r.hlen(this.k.deadLetters), this.r.hlen(this.k.skipped)]);
    return { deadLetters: d, skipped: s };
  }

  /** Every dead letter (or skipped file), streamed page by page. */
  async *list(which: "deadLetters" | "skipped" = "deadLetters"): AsyncGenerator<FileRecord[]> {
    let cursor = "0";
    do {
      const [next, flat] = await this.r.hscan(this.k[which], cursor, "COUNT", 500);
      cursor = next;
      const page: FileRecord[] = [];
      for (let i = 1; i < flat.length; i += 2) page.push(JSON.parse(flat[i]!) as FileRecord);
      if (page.length) yield page;
    } while (cursor !== "0");
  }

  /** The records of some keys (missing ones are left out). */
  async get(which: "deadLetters" | "skipped", fileKeys: string[]): Promise<FileRecord[]> {
    if (fileKeys.length === 0) return [];
    const vals = await this.r.hmget(this.k[which], ...fileKeys);
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as FileRecord);
  }

  /**
   * Puts dead letters back in the backlog: each goes on its partition's retry list, which the next
   * run takes whatever the band says, and leaves the dead-letter list (atomically per file).
   * `only`: these keys; default all. Returns how many were put back.
   */
  async retry(only?: string[]): Promise<number> {
    let n = 0;
    const put = async (recs: FileRecord[]) => {
      for (const rec of recs) {
        const res = await this.r
          .multi()
          .hdel(this.k.deadLetters, rec.key)
          .hset(this.k.retry(rec.partition), rec.key, rec.lastModified)
          .exec();
        if (Number(res?.[0]?.[1]) === 1) n++;
      }
    };
    if (only) await put(await this.get("deadLetters", only));
    else for await (const page of this.list("deadLetters")) await put(page);
    return n;
  }

  /** Forgets dead letters (they stay done). `only`: these keys; default all. Returns how many. */
  async clear(only?: string[]): Promise<number> {
    if (only) return only.length ? this.r.hdel(this.k.deadLetters, ...only) : 0;
    const n = await this.r.hlen(this.k.deadLetters);
    await this.r.del(this.k.deadLetters);
    return n;
  }
}
