/**
 * Checks that a zstd stream is whole, without decompressing it: walks the frames (RFC 8878) and
 * their block headers, skipping block contents, and fails when the bytes end inside a frame (a
 * truncated upload or copy). DuckDB's zstd reader returns what it could decode of a truncated file
 * without an error, and Node 20 has no zstd to check it with; corruption inside a block is left to
 * the decoder. Cost: a few bytes read per 128 KiB block.
 */

const ZSTD_MAGIC = 0xfd2fb528;

/** Bytes of the frame header after its descriptor byte: window descriptor, dictionary id, content size. */
function headerRest(fhd: number): number {
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const did = [0, 1, 2, 4][fhd & 3]!;
  const fcs = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag]!;
  return (single ? 0 : 1) + did + fcs;
}

type Step = "magic" | "skippable" | "descriptor" | "block";

export class ZstdFrameCheck {
  private step: Step = "magic";
  private need = 4;
  private readonly held: number[] = [];
  private skip = 0;
  private checksum = false;
  private frames = 0;
  private offset = 0;
  private error: string | undefined;

  /** Feeds the next bytes of the stream. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && this.error === undefined) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      this.held.push(chunk[i]!);
      i++;
      if (this.held.length === this.need) {
        this.handle(this.held.splice(0), this.offset + i - this.need);
      }
    }
    this.offset += chunk.length;
  }

  /** Why the stream is not a whole zstd stream, once all of it was fed; undefined when it is. */
  end(): string | undefined {
    if (this.error !== undefined) return this.error;
    if (this.step === "magic" && this.held.length === 0 && this.skip === 0 && this.frames > 0) return undefined;
    if (this.frames === 0 && this.held.length === 0 && this.skip === 0) return "empty zstd stream";
    return `truncated zstd stream: it ends inside a frame after ${this.offset} bytes`;
  }

  private handle(b: number[], at: number): void {
    switch (this.step) {
      case "magic": {
        const magic = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
        if (magic === ZSTD_MAGIC) {
          this.step = "descriptor";
          this.need = 1;
        } else if (magic >>> 4 === 0x184d2a5) {
          this.step = "skippable";
          this.need = 4;
        } else {
          this.error = `not a zstd frame at byte ${at} (corrupt, or data after the last frame)`;
        }
        return;
      }
      case "skippable":
        this.skip = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
        this.step = "magic";
        this.need = 4;
        return;
      case "descriptor":
        if (b[0]! & 0x08) {
          this.error = `corrupt zstd frame header at byte ${at}`;
          return;
        }
        this.checksum = ((b[0]! >> 2) & 1) === 1;
        this.skip = headerRest(b[0]!);
        this.step = "block";
        this.need = 3;
        return;
      case "block": {
        const h = b[0]! | (b[1]! << 8) | (b[2]! << 16);
        const last = h & 1;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) {
          this.error = `corrupt zstd block header at byte ${at}`;
          return;
        }
        this.skip = type === 1 ? 1 : size;
        if (last) {
          this.frames++;
          if (this.checksum) this.skip += 4;
          this.step = "magic";
          this.need = 4;
        }
        return;
      }
    }
  }
}
