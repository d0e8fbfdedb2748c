// @maxine/sdk: the hand-written TypeScript SDK of Maxine. createMaxineClient
// is the plain RPC client; Session keeps instances alive over one heartbeat
// stream; Watcher keeps a live local view of services and picks instances
// with the same algorithms as the server's Discover; ConfigWatcher keeps a
// service configuration key's value up to date.

export { createMaxineClient, createMaxineTransport, DEFAULT_PING_INTERVAL_MS, DEFAULT_PING_TIMEOUT_MS, type MaxineClient, type MaxineClientOptions, type Protocol } from "./client.js";
export { bearerInterceptor, type TlsOptions, type TokenSource } from "./credentials.js";
export { createFailoverTransport, FAILOVER_CODES, type FailoverTransport } from "./failover.js";
export {
  Session,
  type InstanceInit,
  type ReconnectInfo,
  type RegisterOptions,
  type SessionEvents,
  type SessionOptions,
  type SessionState,
} from "./session.js";
export { InstanceHandle, keyString, type InstanceKeyOf } from "./instance-handle.js";
export {
  Watcher,
  WatchOverflowError,
  type FilterInit,
  type OutcomeTarget,
  type WatcherEjectionEvent,
  type WatcherEvents,
  type WatcherOptions,
  type WatcherState,
} from "./watcher.js";
export {
  DEFAULT_EJECTION,
  OutlierEjector,
  validateEjectionOptions,
  type EjectionCounters,
  type EjectionEvent,
  type EjectionOptions,
  type EjectionReason,
} from "./outlier-ejector.js";
export { FAILURE_CODES, outcomeOf, type OutcomeOptions } from "./call-outcome.js";
export { connectOutcomeInterceptor } from "./connect-outcome-interceptor.js";
export { InstanceView, MAX_HELD_BYTES, MAX_HELD_INSTANCES, type ApplyResult, type ChangeType, type Holdings, type SyncInfo, type WatchChange } from "./instance-view.js";
export { instanceDigest, type DigestContent } from "./instance-digest.js";
export { Picker, type PickerEjection } from "./picker.js";
export {
  ConfigWatcher,
  createConfigClient,
  getConfig,
  jsonDecoder,
  type ConfigClient,
  type ConfigValue,
  type ConfigWatcherEvents,
  type ConfigWatcherOptions,
  type Decoder,
} from "./config-watcher.js";
export { ConfigService, type ConfigEntry } from "./gen/maxine/config/v1/config_pb.js";
export { diffLines, type LineOp } from "./line-diff.js";
export { Backoff, backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { Emitter, type Listener } from "./emitter.js";
export { systemTimers, type TimerHandle, type Timers } from "./timers.js";
export { HashRing, RING_POINTS, compareIds, hash32, pickLeastLoaded, pickWeighted, rendezvous, type Candidate, type Random } from "./balancer.js";
export {
  BeatResult,
  CheckStatus,
  EventType,
  OperatorStatus,
  RegistryService,
  RemovalReason,
  ResetReason,
  ServingStatus,
  Strategy,
  InstanceSchema,
  type CheckResult,
  type Filter,
  type HealthCheck,
  type Instance,
  type InstanceKey,
  type DiscoverRequest,
  type DiscoverResponse,
  type ListServicesResponse,
  type RegisterResponse,
  type ServiceSummary,
  type WatchEvent,
  type WatchServicesResponse,
} from "./gen/maxine/registry/v1/registry_pb.js";
