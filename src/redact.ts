/**
 * Keeps secrets out of errors, logs, `--json` and metrics: passwords in URLs, and values of fields
 * whose names say they are secret.
 */
const SECRET_FIELD = /(pass(word)?|secret|token|credential|authorization|api[-_]?key|private[-_]?key|session)/i;

/** `redis://user:pw@host` → `redis://user:***@host` (any scheme), anywhere in a text. */
export function redactText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]+)@/gi, "$1$2:***@");
}

/** A URL for messages: its password masked. */
export function redactUrl(url: string): string {
  return redactText(url);
}

/** Whether a field name says its value is secret (`secretAccessKey`, `password`, `sessionToken`, …). */
export function isSecretField(name: string): boolean {
  return SECRET_FIELD.test(name) && !/^(has|is)[A-Z]/.test(name);
}

/** A deep copy with secret fields replaced by "***" and URL passwords masked in strings. */
export function redact<T>(value: T, depth = 0): T {
  if (typeof value === "string") return redactText(value) as T;
  if (value instanceof Error) return redactText(value.message) as T;
  if (depth > 8 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = isSecretField(k) && v !== undefined && v !== null && v !== "" ? "***" : redact(v, depth + 1);
  return out as T;
}
