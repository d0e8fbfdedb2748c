import type { ConfigEntry } from "../domain/config-entry.js";
import type { Logger } from "../domain/logger.js";
import type { ConfigStore } from "../store/config-store.js";
import type { ConfigPolicies } from "./cache.js";
import { XDS_CONFIG_KEY, parseConfigPolicy } from "./policy.js";
import type { LbPolicy } from "./resources.js";

/**
 * XdsConfigPolicies reads services' load-balancing policies from their
 * configuration (ConfigService key `xds`, JSON {"lbPolicy", "hashHeader"}).
 * The configuration store opens at the first xDS stream (as it does at the
 * first ConfigService call: a server that serves neither never opens it);
 * until then, and for a service without the key, the instances' metadata
 * decides. A change of the key rebuilds the service's Route and Cluster
 * (changed is called); a value that is not a policy is logged once per
 * version and ignored.
 */
export class XdsConfigPolicies implements ConfigPolicies {
  private store: ConfigStore | undefined;
  private opening = false;
  private stop: (() => void) | undefined;
  private readonly parsed = new WeakMap<ConfigEntry, LbPolicy | undefined>();

  constructor(
    private readonly open: () => Promise<ConfigStore>,
    private readonly log: Logger,
    /** changed is told when a service's policy may have changed (all: undefined, once the store opened). */
    private readonly changed: (namespace: string | undefined, service: string | undefined) => void,
  ) {}

  /** start opens the configuration store, once (again after a failure). */
  start(): void {
    if (this.opening) return;
    this.opening = true;
    this.open().then(
      (store) => {
        this.store = store;
        this.stop = store.subscribe((c) => {
          if (c.entry.key === XDS_CONFIG_KEY) this.changed(c.entry.namespace, c.entry.service);
        });
        this.changed(undefined, undefined);
      },
      (err: unknown) => {
        this.opening = false;
        this.log.warn({ err }, "xds: the configuration store did not open; load-balancing policies come from instance metadata until it does");
      },
    );
  }

  /** policyOf is the policy of the service's latest `xds` value, parsed once per version; undefined when there is none or it is not a policy. */
  policyOf(namespace: string, service: string): LbPolicy | undefined {
    const entry = this.store?.versions(namespace, service, XDS_CONFIG_KEY)[0];
    if (entry === undefined || entry.deleted) return undefined;
    if (this.parsed.has(entry)) return this.parsed.get(entry);
    let policy: LbPolicy | undefined;
    try {
      policy = parseConfigPolicy(new TextDecoder().decode(entry.value));
    } catch (err) {
      this.log.warn({ namespace, service, version: entry.version, err: (err as Error).message }, "xds: the service's xds configuration is not a load-balancing policy; ignored");
    }
    this.parsed.set(entry, policy);
    return policy;
  }

  /** close stops following the configuration store's changes. */
  close(): void {
    this.stop?.();
  }
}
