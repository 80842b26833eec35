import { appendFileSync } from "node:fs";

/**
 * The chaos suite's report: tables and figures, printed on stdout (outside vitest's console
 * capture) and appended to $TRANCHE_CHAOS_REPORT when set.
 */
export function report(title: string, lines: string[]): void {
  const text = `\n### ${title}\n${lines.join("\n")}\n`;
  process.stdout.write(text);
  if (process.env.TRANCHE_CHAOS_REPORT) appendFileSync(process.env.TRANCHE_CHAOS_REPORT, text);
}

/** A Markdown table. */
export function table(head: string[], rows: (string | number)[][]): string[] {
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
}
