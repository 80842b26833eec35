/**
 * What a processor module may import (`import { JobError } from "tranche/processor"`): the
 * contract's types and the typed errors that tell a file error from a job error.
 */
export { FileError, JobError } from "../../src/failures.js";
export type { Processor, ProcessorContext, ProcessorResult, StandardSchemaV1 } from "./types.js";
export { readLines, readLineChunks, writeChunk, LineWriter } from "./lines.js";
