import type { Writable } from "node:stream";

/** An open output object: write to `stream`, then `commit()` makes it visible (atomically where possible). */
export interface SinkWriter {
  readonly stream: Writable;
  /** Finishes the object; after this resolves the output is durable and visible under its final name. */
  commit(): Promise<{ bytes: number; location: string }>;
  /** Discards a partial object (best effort). */
  abort(err?: Error): Promise<void>;
}

/** Where processors write. Output names are relative to the sink root. */
export interface Sink {
  readonly uri: string;
  create(key: string, contentType?: string): Promise<SinkWriter>;
}
