import { create, toBinary } from "@bufbuild/protobuf";
import {
  ConfigService,
  DeleteResponseSchema,
  GetResponseSchema,
  HistoryResponseSchema,
  ListResponseSchema,
  PutResponseSchema,
  RollbackResponseSchema,
  WatchResponseSchema,
  type DeleteRequest,
  type GetRequest,
  type HistoryRequest,
  type ListRequest,
  type PutRequest,
  type RollbackRequest,
  type WatchRequest,
} from "@maxine/sdk/gen/maxine/config/v1/config_pb";
import type { ServiceConfig } from "../registry/service-config.js";
import type { ConfigWatchItem } from "../watch/config-hub.js";
import { configEntryToPb, configWatchItemToPb } from "../wire/config-convert.js";
import { outgoing, type Outgoing } from "./context.js";
import { methodInfo, type Service } from "./service.js";
import type { FlushScheduler } from "./stream-output.js";
import { serveWatcher, type OpenWatches } from "./watch-call.js";
import type { WatchBudget } from "./watch-budget.js";

/** ConfigServiceDeps are the parts the configuration RPCs call. */
export interface ConfigServiceDeps {
  readonly config: ServiceConfig;
  readonly flushes: FlushScheduler;
  readonly open?: OpenWatches;
  readonly budget?: WatchBudget;
}

/**
 * configService is maxine.config.v1.ConfigService as a table of handlers,
 * mounted on the pipeline like the registry: every protocol, the same
 * interceptors (authentication, deadlines, metrics, error mapping), the
 * same port. Each handler reads its request, calls the core and answers;
 * Watch is served by serveWatcher, the registry watch's own loop.
 */
export function configService(deps: ConfigServiceDeps): Service {
  const { config } = deps;
  const info = (name: string) => methodInfo(ConfigService, name);
  return {
    desc: ConfigService,
    methods: [
      {
        kind: "unary",
        info: info("Put"),
        async handle(ctx, m) {
          const r = m as PutRequest;
          const entry = await config.put(ctx.access, r, r.value, r.contentType, r.expectedVersion);
          return outgoing(create(PutResponseSchema, { entry: configEntryToPb(entry) }));
        },
      },
      {
        kind: "unary",
        info: info("Get"),
        async handle(ctx, m) {
          const r = m as GetRequest;
          return outgoing(create(GetResponseSchema, { entry: configEntryToPb(await config.get(ctx.access, r, r.version)) }));
        },
      },
      {
        kind: "unary",
        info: info("Delete"),
        async handle(ctx, m) {
          const r = m as DeleteRequest;
          return outgoing(create(DeleteResponseSchema, { entry: configEntryToPb(await config.delete(ctx.access, r, r.expectedVersion)) }));
        },
      },
      {
        kind: "unary",
        info: info("List"),
        async handle(ctx, m) {
          const r = m as ListRequest;
          const { entries, revision } = await config.list(ctx.access, r.namespace, r.service);
          return outgoing(create(ListResponseSchema, { entries: entries.map((e) => configEntryToPb(e, r.includeValues)), revision: BigInt(revision) }));
        },
      },
      {
        kind: "unary",
        info: info("History"),
        async handle(ctx, m) {
          const r = m as HistoryRequest;
          const entries = await config.history(ctx.access, r, r.limit);
          return outgoing(create(HistoryResponseSchema, { entries: entries.map((e) => configEntryToPb(e)) }));
        },
      },
      {
        kind: "unary",
        info: info("Rollback"),
        async handle(ctx, m) {
          const r = m as RollbackRequest;
          return outgoing(create(RollbackResponseSchema, { entry: configEntryToPb(await config.rollback(ctx.access, r, r.toVersion, r.expectedVersion)) }));
        },
      },
      {
        kind: "server_streaming",
        info: info("Watch"),
        async run(ctx, m, out) {
          const r = m as WatchRequest;
          const conn = ctx.connection;
          const principal = ctx.principal.name;
          // a configuration watch takes one of the same watcher slots as WatchServices (per connection and per principal)
          conn.acquire("watchers", principal);
          let w;
          try {
            w = await config.watch(ctx.access, r);
          } catch (err) {
            conn.release("watchers", principal);
            throw err;
          }
          w.onEnd(() => conn.release("watchers", principal));
          return serveWatcher(deps, ctx, w, out, outgoingOf);
        },
      },
    ],
  };
}

// An event's answer is made once per change and shared by every watcher
// sent it (the hub hands them all the same item): encoded once.
const events = new WeakMap<ConfigWatchItem, Outgoing>();

function outgoingOf(item: ConfigWatchItem): Outgoing {
  if (item.kind !== "event") return outgoing(configWatchItemToPb(item));
  let answer = events.get(item);
  if (answer === undefined) {
    let message: ReturnType<typeof configWatchItemToPb> | undefined;
    let bytes: Uint8Array | undefined;
    let frame: Uint8Array | undefined;
    const msg = () => (message ??= configWatchItemToPb(item));
    const encoded = () => (bytes ??= toBinary(WatchResponseSchema, msg()));
    answer = { message: msg, bytes: encoded, frame: () => (frame ??= enveloped(encoded())) };
    events.set(item, answer);
  }
  return answer;
}

/** enveloped is bytes as one message frame (flags 0, big-endian length): what gRPC, gRPC-Web and Connect streams write. */
function enveloped(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}
