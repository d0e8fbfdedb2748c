import { instanceDigest } from "@maxine/sdk/digest";
import { effectiveStatus, type InstanceRecord } from "../domain/instance.js";
import { operatorStatusToPb, statusToPb } from "./instance-fields.js";

const digests = new WeakMap<InstanceRecord, bigint>();

/**
 * recordDigest is r's content digest as a watcher computes it from the
 * Instance it received (WatchHoldings in registry.proto; instanceDigest in
 * the SDK, which both sides share): what its holdings are compared with.
 * Records are immutable, so it is computed once per record, however many
 * watchers resume holding it.
 */
export function recordDigest(r: InstanceRecord): bigint {
  let d = digests.get(r);
  if (d === undefined) {
    d = instanceDigest({ ...r, status: statusToPb[effectiveStatus(r)], operatorStatus: operatorStatusToPb[r.operatorStatus] });
    digests.set(r, d);
  }
  return d;
}
