import { denied, requirePermission, type Access } from "../domain/access.js";
import type { Clock } from "../domain/clock.js";
import type { ConfigChange, ConfigEntry, ConfigWrite } from "../domain/config-entry.js";
import { Reason, RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import type { ConfigStore } from "../store/config-store.js";
import { ConfigHub, type ConfigHubSettings, type ConfigWatchItem } from "../watch/config-hub.js";
import type { Watcher } from "../watch/watcher.js";
import { configKeyOf, contentTypeOf, valueOf, versionOf, type ConfigValueLimits } from "./config-validate.js";
import { namespaceOf, serviceOf, watchServicesOf } from "./validate.js";

/** ServiceConfigOptions are what the configuration core is built with. */
export interface ServiceConfigOptions {
  /** open opens the store (the composition root picks it); called once, at the first call that needs it. */
  readonly open: () => Promise<ConfigStore>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly limits: ConfigValueLimits;
  readonly hub: ConfigHubSettings;
  /** audit logs every write at info (MAXINE_AUDIT_LOG). */
  readonly audit: boolean;
}

/** KeyRef names a key in a request, before validation. */
export interface KeyRef {
  readonly namespace: string;
  readonly service: string;
  readonly key: string;
}

/** Opened is the store and its hub, once open. */
interface Opened {
  readonly store: ConfigStore;
  readonly hub: ConfigHub;
}

/**
 * ServiceConfig is the service configuration core (ConfigService): it
 * validates requests, checks the caller's config_read / config_write
 * permission on the namespace and service, and calls the store, which
 * plans every write with the one set of rules (planWrite). It opens its
 * store at the first call that needs it, so a server that serves no
 * configuration never touches the data directory; a store that fails to
 * open fails that call with UNAVAILABLE and is tried again by the next.
 */
export class ServiceConfig {
  private opened: Promise<Opened> | undefined;
  private hubNow: ConfigHub | undefined;
  private closed = false;

  constructor(private readonly opts: ServiceConfigOptions) {}

  /** ready opens the store and hub if they are not open yet. */
  ready(): Promise<Opened> {
    if (this.closed) return Promise.reject(new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, retry on another server"));
    this.opened ??= this.opts.open().then(
      (store) => {
        this.opts.logger.info({ registryId: store.registryId, revision: store.revision() }, "configuration store open");
        this.hubNow = new ConfigHub(store, this.opts.clock, this.opts.logger, this.opts.hub);
        return { store, hub: this.hubNow };
      },
      (err: unknown) => {
        this.opened = undefined;
        this.opts.logger.error({ err }, "configuration store: cannot open");
        throw err;
      },
    );
    return this.opened;
  }

  /** put writes a key's value as a new version (compare-and-set with expectedVersion). */
  async put(access: Access, ref: KeyRef, value: Uint8Array, contentType: string, expectedVersion: bigint | undefined): Promise<ConfigEntry> {
    const k = this.keyOf(ref);
    return this.write(access, "Put", k, () => ({
      ...k,
      op: "put",
      value: valueOf("value", value, this.opts.limits),
      contentType: contentTypeOf("content_type", contentType),
      ...this.expected(expectedVersion),
      principal: access.principal,
      now: this.opts.clock.now(),
    }));
  }

  /** delete deletes a key (a new version marked deleted; compare-and-set with expectedVersion). */
  async delete(access: Access, ref: KeyRef, expectedVersion: bigint | undefined): Promise<ConfigEntry> {
    const k = this.keyOf(ref);
    return this.write(access, "Delete", k, () => ({ ...k, op: "delete", ...this.expected(expectedVersion), principal: access.principal, now: this.opts.clock.now() }));
  }

  /** rollback writes the content of a kept version as a new version (compare-and-set with expectedVersion). */
  async rollback(access: Access, ref: KeyRef, toVersion: bigint, expectedVersion: bigint | undefined): Promise<ConfigEntry> {
    const k = this.keyOf(ref);
    if (toVersion === 0n) throw new RegistryError(Reason.INVALID_ARGUMENT, "to_version: is required (the version to roll back to)");
    return this.write(access, "Rollback", k, () => ({
      ...k,
      op: "rollback",
      toVersion: versionOf("to_version", toVersion),
      ...this.expected(expectedVersion),
      principal: access.principal,
      now: this.opts.clock.now(),
    }));
  }

  /** get reads a key's latest version (version 0) or a kept one. */
  async get(access: Access, ref: KeyRef, version: bigint): Promise<ConfigEntry> {
    const k = this.keyOf(ref);
    const v = versionOf("version", version);
    requirePermission(access, "config_read", k.namespace, k.service);
    const { store } = await this.ready();
    const versions = store.versions(k.namespace, k.service, k.key);
    const where = `${k.namespace}/${k.service}/${k.key}`;
    if (v === 0) {
      const latest = versions[0];
      if (latest === undefined || latest.deleted) throw new RegistryError(Reason.NOT_FOUND, `key: ${where} does not exist${latest?.deleted === true ? ` (deleted at version ${latest.version})` : ""}`);
      return latest;
    }
    const found = versions.find((e) => e.version === v);
    if (found === undefined) {
      const kept = versions.length === 0 ? "none" : `${versions[versions.length - 1]!.version}..${versions[0]!.version}`;
      throw new RegistryError(Reason.NOT_FOUND, `version: version ${v} of ${where} is not kept (kept: ${kept}; MAXINE_CONFIG_HISTORY_DEPTH)`);
    }
    if (found.deleted) throw new RegistryError(Reason.NOT_FOUND, `version: version ${v} of ${where} is a delete`);
    return found;
  }

  /** list lists a service's keys (latest versions), with the revision they were read at. */
  async list(access: Access, namespace: string, service: string): Promise<{ entries: readonly ConfigEntry[]; revision: number }> {
    const ns = namespaceOf("namespace", namespace);
    const svc = serviceOf("service", service);
    requirePermission(access, "config_read", ns, svc);
    const { store } = await this.ready();
    return { entries: store.keys(ns, svc), revision: store.revision() };
  }

  /** history lists a key's kept versions, newest first, at most limit (0: all kept). */
  async history(access: Access, ref: KeyRef, limit: number): Promise<readonly ConfigEntry[]> {
    const k = this.keyOf(ref);
    requirePermission(access, "config_read", k.namespace, k.service);
    const { store } = await this.ready();
    const versions = store.versions(k.namespace, k.service, k.key);
    if (versions.length === 0) throw new RegistryError(Reason.NOT_FOUND, `key: ${k.namespace}/${k.service}/${k.key} was never written (or its history was dropped)`);
    return limit === 0 ? versions : versions.slice(0, limit);
  }

  /**
   * watch opens a configuration watcher after checking config_read: on each
   * service it names, or, namespace-wide, on the services of the namespace
   * the caller may read (refused when no rule covers the namespace).
   */
  async watch(
    access: Access,
    req: { readonly namespace: string; readonly services: readonly string[]; readonly resumeRevision: bigint; readonly registryId: string },
  ): Promise<Watcher<ConfigChange, ConfigWatchItem>> {
    const namespace = namespaceOf("namespace", req.namespace);
    const services = watchServicesOf("services", req.services, this.opts.limits);
    let readable: ((service: string) => boolean) | undefined;
    if (services.length === 0) {
      if (!access.allowsAll("config_read", namespace)) {
        if (!access.allowsAny("config_read", namespace)) throw denied(access, "config_read", `any service of namespace ${namespace} (a namespace-wide watch)`);
        readable = (service) => access.allows("config_read", namespace, service);
      }
    } else {
      for (const s of services) requirePermission(access, "config_read", namespace, s);
    }
    const resumeRevision = versionOf("resume_revision", req.resumeRevision);
    const { hub } = await this.ready();
    return hub.watch({ namespace, services, resumeRevision, registryId: req.registryId, readable });
  }

  /** watchers counts open configuration watchers. */
  get watchers(): number {
    return this.hubNow?.watchers ?? 0;
  }

  /** close ends every configuration watch and closes the store (after the writes in flight). */
  async close(): Promise<void> {
    this.closed = true;
    const opened = await this.opened?.catch(() => undefined);
    opened?.hub.close();
    await opened?.store.close();
  }

  /**
   * write checks config_write, builds the write and commits it; with the
   * audit log on, every write and every refusal (permission, compare-and-set,
   * limits) is logged with the principal, the method and the key.
   */
  private async write(access: Access, method: string, where: KeyRef, build: () => ConfigWrite): Promise<ConfigEntry> {
    try {
      requirePermission(access, "config_write", where.namespace, where.service);
      const w = build();
      const { store } = await this.ready();
      const change = await store.write(w);
      if (this.opts.audit) this.opts.logger.info({ audit: true, principal: access.principal, method, ...where, version: change.entry.version, revision: change.revision }, "config write");
      return change.entry;
    } catch (err) {
      if (this.opts.audit && err instanceof RegistryError) {
        this.opts.logger.info({ audit: true, principal: access.principal, method, ...where, refused: err.reason, error: err.message }, "config write refused");
      }
      throw err;
    }
  }

  private keyOf(ref: KeyRef): KeyRef {
    return { namespace: namespaceOf("namespace", ref.namespace), service: serviceOf("service", ref.service), key: configKeyOf("key", ref.key) };
  }

  private expected(v: bigint | undefined): { expectedVersion?: number } {
    return v === undefined ? {} : { expectedVersion: versionOf("expected_version", v) };
  }
}
