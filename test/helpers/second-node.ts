/**
 * CI runs the whole suite on Node 20 and again on the current LTS (see .ci/run). Three long tests
 * measure what no Node version changes (the bytes of Redis keys after a 20,000-file drain and after
 * 100,000 files in 200 runs, the count of S3 LIST requests); the second run sets
 * TRANCHE_SECOND_NODE_RUN=1 and skips them, to keep CI inside its 30 minutes. The drain runs worker
 * threads and child processes, which many other tests run on both Nodes; everything that measures
 * Node itself (heap limits, the planner's memory, DuckDB, timers, the scheduler's failover) runs on both.
 */
export const secondNodeRun = process.env.TRANCHE_SECOND_NODE_RUN === "1";
