/** The largest request body the API reads (1 MiB): a larger one is 413 E_TOO_LARGE. */
export const BODY_LIMIT = 1024 * 1024;
