import { loadConfig } from "../config/load.js";
import { RunSlots } from "../bookmark/run-slots.js";
import { RunInProgressError } from "../errors.js";
import { migrateState, STATE_VERSION } from "../state-version.js";
import { openConnections } from "./connect.js";

/** `tranche migrate`: upgrades the Redis state under the prefix to this tranche's format (refused while a run is in progress). */
export async function migrateCommand(opts: { config?: string }): Promise<void> {
  const cfg = loadConfig(opts.config);
  const conn = await openConnections(cfg, { checkVersion: false });
  try {
    const jobs = Object.keys(cfg.jobs);
    for (const j of jobs) {
      const live = await new RunSlots(conn.redis, cfg.prefix, j).live();
      if (live.length) throw new RunInProgressError(j, live);
    }
    const steps = await migrateState(conn.redis, cfg.prefix, jobs);
    process.stdout.write(
      steps.length
        ? steps.map((s) => `${s}\n`).join("") + `state under prefix "${cfg.prefix}" is now format ${STATE_VERSION}\n`
        : `state under prefix "${cfg.prefix}" is already format ${STATE_VERSION}; nothing to do\n`,
    );
  } finally {
    await conn.close();
  }
}
