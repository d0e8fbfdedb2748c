import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ConfigEntrySchema,
  EventType,
  WatchResponseSchema,
  type ConfigEntry as ConfigEntryPb,
  type WatchResponse,
} from "@maxine/sdk/gen/maxine/config/v1/config_pb";
import type { ConfigEntry } from "../domain/config-entry.js";
import type { ConfigWatchItem } from "../watch/config-hub.js";

const EMPTY = new Uint8Array(0);

/** configEntryToPb is an entry as its message; withValue false leaves the value out (List without include_values). */
export function configEntryToPb(e: ConfigEntry, withValue = true): ConfigEntryPb {
  return create(ConfigEntrySchema, {
    namespace: e.namespace,
    service: e.service,
    key: e.key,
    value: withValue ? e.value : EMPTY,
    contentType: e.contentType,
    version: BigInt(e.version),
    revision: BigInt(e.revision),
    updatedAt: timestampFromMs(e.updatedAt),
    principal: e.principal,
    deleted: e.deleted,
  });
}

/** configWatchItemToPb is a configuration watch item as its WatchResponse. */
export function configWatchItemToPb(item: ConfigWatchItem): WatchResponse {
  switch (item.kind) {
    case "snapshot":
      return create(WatchResponseSchema, { message: { case: "snapshot", value: { entries: item.entries.map((e) => configEntryToPb(e)) } } });
    case "snapshot_end":
      return create(WatchResponseSchema, {
        message: { case: "snapshotEnd", value: { revision: BigInt(item.revision), registryId: item.registryId, reset: item.reason !== undefined } },
      });
    case "event":
      return create(WatchResponseSchema, {
        message: {
          case: "event",
          value: {
            type: item.change.type === "DELETED" ? EventType.DELETED : EventType.PUT,
            entry: configEntryToPb(item.change.entry),
            revision: BigInt(item.change.revision),
          },
        },
      });
    case "progress":
      return create(WatchResponseSchema, { message: { case: "progress", value: { revision: BigInt(item.revision), registryId: item.registryId } } });
  }
}
