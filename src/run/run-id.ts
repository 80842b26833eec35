import { randomBytes } from "node:crypto";

/** A sortable, unique run id: `20261126T051500123Z-1a2b3c`. */
export function newRunId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:.]/g, "");
  return `${t}-${randomBytes(3).toString("hex")}`;
}
