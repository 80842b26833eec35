import type { RunProgress } from "../run/summary.js";
import { formatBytes, formatDuration } from "./render.js";

/**
 * Shows a run's progress: a redrawn bar (files, bytes, rate, ETA) on a terminal, otherwise a plain
 * line at most every `intervalMs`.
 */
export class ProgressReporter {
  private startedAt = Date.now();
  private last = 0;
  private drawn = false;
  constructor(
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly intervalMs = out.isTTY ? 100 : 2000,
  ) {}

  update(p: RunProgress): void {
    if (process.env.TRANCHE_LOG_LEVEL === "silent") return;
    const now = Date.now();
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    const elapsed = (now - this.startedAt) / 1000;
    let line: string;
    if (p.phase === "listing") {
      // The plan step (on whichever worker takes it) reports its listing about once a second.
      line = p.listed > 0 ? `${this.label} listing… ${p.listed.toLocaleString("en-US")} objects so far` : `${this.label} planning…`;
    } else {
      const frac = p.files ? p.filesDone / p.files : 1;
      const rate = p.filesDone / Math.max(elapsed, 0.001);
      const mbs = p.bytesDone / 1e6 / Math.max(elapsed, 0.001);
      const eta = rate > 0 ? (p.files - p.filesDone) / rate : Infinity;
      const width = 24;
      // The bar only on a terminal; a log file gets plain figures.
      const bar = this.out.isTTY ? `${"█".repeat(Math.round(frac * width)).padEnd(width, "░")} ` : `${Math.floor(frac * 100)}% `;
      line = `${this.label} ${bar}${p.filesDone}/${p.files} files ${formatBytes(p.bytesDone)}/${formatBytes(p.bytes)} ${rate.toFixed(0)} files/s ${mbs.toFixed(1)} MB/s ETA ${formatDuration(eta)}`;
    }
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else {
      this.out.write(line + "\n");
    }
  }

  done(): void {
    if (this.drawn) this.out.write("\r\x1b[2K");
    this.drawn = false;
  }
}
