// The benchmark's fixed parameters, shared by bench/run.mjs (which measures) and
// bench/report.mjs (which writes them into the report).
export const PANEL_DELAYS = [100, 200, 300];
export const SUMMARY_DELAY = 100;
export const STREAM_CHUNKS = 200;
export const CHUNK_INTERVAL = 2; // ms between the summary's content chunks in the streaming test
export const SCALE_DELAY = 20; // ms per panel member and for the summary in the panel-size test
export const PANEL_SIZES = [1, 3, 6, 12];
export const ANSWER_SIZES = [1024, 32 * 1024, 256 * 1024];
export const CONCURRENCY = [1, 16, 64];
export const MAX_IN_FLIGHT = 6; // N-1's (and Cloudflare's) cap of open upstream calls per request
