/**
 * `agentcap/audit`: the audit log. Record, then act: an intent is durable
 * before an allowed invocation acts, its outcome completes it; a denial is
 * one event. Entries form a Merkle tree (RFC 9162 style) whose head is
 * signed into checkpoints (C2SP signed notes) kept outside the database, so
 * history cannot be rewritten unseen, and any event can be proved to a
 * third party holding only the public key. Redacted, queryable by lineage.
 * SQLite by default, Postgres to share; each engine is loaded only when
 * opened.
 */
export { openAuditStore } from "./open.js";
export type { AuditStoreOptions, CheckpointOptions } from "./open.js";
export type { AuditStore, ExportOptions } from "./store.js";
export { AUDIT_ACTIONS, MAX_HISTOGRAM_BUCKETS } from "./query.js";
export type { AuditQuery, AuditRecord, Histogram, HistogramKey, HistogramOptions, HistogramRow } from "./query.js";
export type { LoggedEvent } from "./encoding.js";
export type { OpenIntent, VerifyOptions as AuditVerifyOptions, VerifyReport } from "./verify.js";
export type { TamperKind, TamperProblem } from "./chain-walker.js";
export { REDACTED } from "./redaction.js";
export type { RedactionPolicy } from "./redaction.js";
export type { ChainHead } from "./chain.js";
/**
 * Retention by age (`store.prune({ before })`): deletes the oldest entries
 * and signs the prune as a retention checkpoint, so what remains still
 * verifies with the public key alone and a deletion without one is still
 * reported. retentionCutoff reads an age (90d, 12h) or an ISO date.
 */
export { retentionCutoff } from "./retention.js";
export type { HeldBack, PruneOptions, PruneReport } from "./retention.js";
export { fileCheckpointSink, generateCheckpointKey, memoryCheckpointSink, splitNotes } from "./checkpoint.js";
export type { CheckpointKeyPair, CheckpointSink } from "./checkpoint.js";
/** Checking a proof needs nothing but this module and the log's public key. */
/** Audit exports as OpenTelemetry logs (OTLP JSON): each record's body an export line, unchanged, so verify-export checks it with the public key alone. */
export { isOtlpLine, linesFromOtlp, OTLP_BATCH, otlpRequest } from "./otlp.js";
export type { StreamLine } from "./otlp.js";
/**
 * The log shipped to an OpenTelemetry collector as it is written (OTLP/HTTP
 * JSON, batched, bounded queue, retries with backoff; never holds up or fails
 * a call; drops counted): pass it as the store's `stream`. verifyStream checks
 * what the collector kept against the signed checkpoints with the public key alone.
 */
export { otlpLogStream } from "./otlp-stream.js";
export type { AuditStream, OtlpLogStream, OtlpStreamOptions, OtlpStreamStats } from "./otlp-stream.js";
export { verifyStream } from "./stream-verifier.js";
export type { VerifiedStream } from "./stream-verifier.js";
export { EXPORT_FORMAT, parseVerifierKey, verifyCheckpoint, verifyConsistency, verifyExport, verifyInclusion, verifyProof } from "./proof-verifier.js";
export type { Checkpoint, ExportLine, ProofBundle, ProvedEntry, Retention, VerifiedExport, VerifiedProof, Verdict, VerifierKey } from "./proof-verifier.js";
