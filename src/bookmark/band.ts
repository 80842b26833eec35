import { createHash } from "node:crypto";

/**
 * The compact band (state format 2). A file committed inside the band is one 10-byte record, the
 * first 8 bytes of the SHA-1 of its key and the millisecond of its last-modified time (u16), kept
 * in the partition's band hash under a 5-byte field: the last-modified second (u32, big-endian)
 * and one of 32 buckets (the hash's top 5 bits), so a field's value stays short even when a bulk
 * upload puts 100,000 files into one minute. A 4-byte field (the second alone) counts the records
 * of that second, and a sorted set indexes the seconds for pruning by score. The Lua side of the
 * same layout is lua/includes/band.lua.
 *
 * Collisions: two keys of one partition collide only when the 64-bit hash prefixes are equal and
 * both files carry the same last-modified second; with n files in one second the odds are about
 * n² / 2⁶⁵ (10⁻¹¹ for 20,000 files in one second). A collision makes the second file look done.
 */
export const RECORD_BYTES = 10;
export const FIELD_BYTES = 5;
/** A band entry as history deltas keep it: field then record. */
export const ENTRY_BYTES = FIELD_BYTES + RECORD_BYTES;

export interface BandEntry {
  /** The band hash field: second (u32) + bucket. */
  field: Buffer;
  /** The record: 8-byte hash + u16 millisecond. */
  record: Buffer;
  hash: Buffer;
  ms: number;
}

/** A file's place in the band. */
export function bandEntry(key: string, lastModified: number): BandEntry {
  const hash = createHash("sha1").update(key, "utf8").digest().subarray(0, 8);
  const sec = Math.min(0xffffffff, Math.max(0, Math.floor(lastModified / 1000)));
  const ms = Math.max(0, Math.min(999, lastModified - sec * 1000));
  const field = Buffer.alloc(FIELD_BYTES);
  field.writeUInt32BE(sec, 0);
  field[4] = hash[0]! >> 3;
  const record = Buffer.alloc(RECORD_BYTES);
  hash.copy(record, 0);
  record.writeUInt16BE(ms, 8);
  return { field, record, hash, ms };
}

/** Whether a field's records hold this hash at this millisecond or later. */
export function recordsHold(value: Buffer | null | undefined, hash: Buffer, ms: number): boolean {
  if (!value) return false;
  for (let i = value.indexOf(hash); i >= 0; i = value.indexOf(hash, i + 1)) {
    if (i % RECORD_BYTES === 0 && value.readUInt16BE(i + 8) >= ms) return true;
  }
  return false;
}

/** The time (epoch ms) of a 15-byte entry. */
export function entryTime(entry: Buffer, at = 0): number {
  return entry.readUInt32BE(at) * 1000 + entry.readUInt16BE(at + FIELD_BYTES + 8);
}

/** A band held in memory (for `pause --from/--to`): entries keyed by field + hash, with the highest millisecond seen. */
export class BandSet {
  private readonly m = new Map<string, number>();
  get size(): number {
    return this.m.size;
  }
  private static id(field: Buffer, hash: Buffer): string {
    return field.toString("latin1") + hash.toString("latin1");
  }
  /** Adds concatenated 15-byte entries, optionally only those at or above `minTime`. */
  addEntries(blob: Buffer, minTime = Number.NEGATIVE_INFINITY): void {
    for (let i = 0; i + ENTRY_BYTES <= blob.length; i += ENTRY_BYTES) {
      if (entryTime(blob, i) < minTime) continue;
      const id = BandSet.id(blob.subarray(i, i + FIELD_BYTES), blob.subarray(i + FIELD_BYTES, i + FIELD_BYTES + 8));
      const ms = blob.readUInt16BE(i + FIELD_BYTES + 8);
      if ((this.m.get(id) ?? -1) < ms) this.m.set(id, ms);
    }
  }
  /** Removes concatenated 15-byte entries. */
  removeEntries(blob: Buffer): void {
    for (let i = 0; i + ENTRY_BYTES <= blob.length; i += ENTRY_BYTES) {
      this.m.delete(BandSet.id(blob.subarray(i, i + FIELD_BYTES), blob.subarray(i + FIELD_BYTES, i + FIELD_BYTES + 8)));
    }
  }
  /** Adds a band hash as HGETALL returns it (fields of other lengths, the per-second counts, are skipped). */
  addHash(flat: Buffer[]): void {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i]!;
      if (field.length !== FIELD_BYTES) continue;
      const v = flat[i + 1]!;
      for (let j = 0; j + RECORD_BYTES <= v.length; j += RECORD_BYTES)
        this.addEntries(Buffer.concat([field, v.subarray(j, j + RECORD_BYTES)]));
    }
  }
  /** Copies another set's entries at or above `minTime`. */
  merge(other: BandSet, minTime = Number.NEGATIVE_INFINITY): void {
    for (const [id, ms] of other.m) {
      const sec = ((id.charCodeAt(0) << 24) >>> 0) + (id.charCodeAt(1) << 16) + (id.charCodeAt(2) << 8) + id.charCodeAt(3);
      if (sec * 1000 + ms >= minTime && (this.m.get(id) ?? -1) < ms) this.m.set(id, ms);
    }
  }
  holds(key: string, lastModified: number): boolean {
    const e = bandEntry(key, lastModified);
    const ms = this.m.get(BandSet.id(e.field, e.hash));
    return ms !== undefined && ms >= e.ms;
  }
}
