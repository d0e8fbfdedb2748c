import type { InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { LbPolicy, LbPolicyName } from "./resources.js";

/** LB_POLICY_KEY is the instance metadata key naming the service's xDS load-balancing policy (ROUND_ROBIN, LEAST_REQUEST, RING_HASH). */
export const LB_POLICY_KEY = "xds-lb-policy";
/** HASH_HEADER_KEY is the instance metadata key naming the request header RING_HASH hashes. */
export const HASH_HEADER_KEY = "xds-hash-header";
/** XDS_CONFIG_KEY is the service configuration key (ConfigService) holding the policy as JSON: it wins over the metadata. */
export const XDS_CONFIG_KEY = "xds";

const POLICIES: readonly LbPolicyName[] = ["ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH"];
/** HEADER is an HTTP/2 header name as gRPC metadata keys are written: lower case, not a pseudo-header. */
const HEADER = /^[0-9a-z_.-]{1,128}$/;

/**
 * parseLbPolicy reads a policy ({"lbPolicy": ..., "hashHeader": ...}); the
 * error names the field and the rule. hashHeader is read for RING_HASH only.
 */
export function parseLbPolicy(where: string, policy: unknown, hashHeader: unknown): LbPolicy {
  if (typeof policy !== "string" || !POLICIES.includes(policy as LbPolicyName)) {
    throw new Error(`${where}.lbPolicy: must be one of ${POLICIES.join(", ")}, got ${JSON.stringify(policy)}`);
  }
  if (policy !== "RING_HASH" || hashHeader === undefined || hashHeader === "") return { policy: policy as LbPolicyName, hashHeader: "" };
  if (typeof hashHeader !== "string" || !HEADER.test(hashHeader)) {
    throw new Error(`${where}.hashHeader: must be a lower-case header name of 1..128 characters [0-9a-z_.-], got ${JSON.stringify(hashHeader)}`);
  }
  return { policy: "RING_HASH", hashHeader };
}

/** parseConfigPolicy reads the `xds` configuration value (JSON text). */
export function parseConfigPolicy(text: string): LbPolicy {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`configuration key xds: must be JSON {"lbPolicy": ..., "hashHeader": ...}: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`configuration key xds: must be a JSON object, got ${text.slice(0, 64)}`);
  const o = v as Record<string, unknown>;
  return parseLbPolicy("configuration key xds", o["lbPolicy"], o["hashHeader"]);
}

/**
 * policyOfMetadata reads the policy from the instances' metadata: the first
 * instance (in instance id order) that carries xds-lb-policy decides, so
 * every replica and every rebuild agrees. A value that is not a policy is
 * logged (debug: an instance's owner set it) and skipped.
 */
export function policyOfMetadata(instances: readonly InstanceRecord[], log: Logger): LbPolicy | undefined {
  for (const r of instances) {
    const policy = r.metadata[LB_POLICY_KEY];
    if (policy === undefined) continue;
    try {
      return parseLbPolicy(`instance ${r.namespace}/${r.service}/${r.instanceId} metadata ${LB_POLICY_KEY}`, policy, r.metadata[HASH_HEADER_KEY]);
    } catch (err) {
      log.debug({ err: (err as Error).message }, "xds: instance metadata names no load-balancing policy; skipped");
    }
  }
  return undefined;
}
