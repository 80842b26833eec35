// Example transform for the built-in `ndjson` processor.
//
// Job config:
//   processor: ndjson
//   processorOptions:
//     transform: ./examples/transforms/add-partition.mjs   # relative to the config file
//
// The default export (or a named `transform` export) is called once per JSON line with the parsed
// record and `{ key, partition, line }`. Return the record to write, an array to write several,
// or null/undefined to drop it; it may be async. A thrown error is reported for that line
// ("transform failed: ...") and processing continues.
//
// This one copies the input's Hive-style partition values (e.g. `{ dt: "2024-01-01" }` for
// `dt=2024-01-01/part-0001.json.gz`) and the source key onto each object record. Existing fields
// of the record win over partition values of the same name. Non-object records are wrapped.

/**
 * @param {unknown} record
 * @param {{ key: string; partition: Record<string, string>; line: number }} meta
 */
export default function addPartition(record, { key, partition }) {
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    return { ...partition, _source: key, value: record };
  }
  return { ...partition, ...record, _source: key };
}
