import type { RunState } from "../run/states.js";

/**
 * Conditional triggers, as Glue's Predicate (groundwork for `tranche scheduler`): `AND` fires once
 * every condition has a matching run end since the trigger last fired; `ANY` fires on the first
 * matching run end. Conditions name a job and one of its run ends.
 */
export interface AfterTrigger {
  logical: "AND" | "ANY";
  conditions: readonly { job: string; state: Extract<RunState, "SUCCEEDED" | "FAILED" | "TIMEOUT" | "STOPPED"> }[];
}

export interface RunEnd {
  job: string;
  state: RunState;
}

/** Whether the trigger fires, given the run ends seen since it last fired (oldest first). */
export function afterFires(t: AfterTrigger, ends: readonly RunEnd[]): boolean {
  const met = (c: AfterTrigger["conditions"][number]) => ends.some((e) => e.job === c.job && e.state === c.state);
  return t.logical === "AND" ? t.conditions.length > 0 && t.conditions.every(met) : t.conditions.some(met);
}
