import { effectiveStatus, type InstanceKey, type InstanceRecord } from "../domain/instance.js";
import type { ServiceView } from "./store.js";

class ServiceEntry implements ServiceView {
  readonly instances = new Map<string, InstanceRecord>();
  servingCount = 0;
  private cache: InstanceRecord[] | undefined;
  private servingCache: readonly InstanceRecord[] | undefined;

  get size(): number {
    return this.instances.size;
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.instances.get(instanceId);
  }

  sorted(): readonly InstanceRecord[] {
    if (this.cache === undefined) {
      this.cache = [...this.instances.values()].sort((a, b) =>
        a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0,
      );
    }
    return this.cache;
  }

  serving(): readonly InstanceRecord[] {
    if (this.servingCache === undefined) {
      const all = this.sorted();
      this.servingCache = this.servingCount === all.length ? all : all.filter((r) => effectiveStatus(r) === "SERVING");
    }
    return this.servingCache;
  }

  set(r: InstanceRecord): void {
    const old = this.instances.get(r.instanceId);
    if (old !== undefined && effectiveStatus(old) === "SERVING") this.servingCount--;
    if (effectiveStatus(r) === "SERVING") this.servingCount++;
    this.instances.set(r.instanceId, r);
    this.cache = undefined;
    this.servingCache = undefined;
  }

  delete(instanceId: string): void {
    const old = this.instances.get(instanceId);
    if (old === undefined) return;
    if (effectiveStatus(old) === "SERVING") this.servingCount--;
    this.instances.delete(instanceId);
    this.cache = undefined;
    this.servingCache = undefined;
  }
}

/**
 * View is the in-memory, indexed registry state (namespace -> service ->
 * instance). The memory store keeps its state in one; a remote store keeps
 * one as the local mirror its reads are served from.
 */
export class View {
  private readonly namespaces = new Map<string, Map<string, ServiceEntry>>();

  get(k: InstanceKey): InstanceRecord | undefined {
    return this.namespaces.get(k.namespace)?.get(k.service)?.get(k.instanceId);
  }

  service(namespace: string, service: string): ServiceView | undefined {
    return this.namespaces.get(namespace)?.get(service);
  }

  services(namespace: string): Array<readonly [string, ServiceView]> {
    const ns = this.namespaces.get(namespace);
    if (ns === undefined) return [];
    return [...ns.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  namespaceNames(): string[] {
    return [...this.namespaces.keys()].sort();
  }

  set(r: InstanceRecord): void {
    let ns = this.namespaces.get(r.namespace);
    if (ns === undefined) this.namespaces.set(r.namespace, (ns = new Map()));
    let svc = ns.get(r.service);
    if (svc === undefined) ns.set(r.service, (svc = new ServiceEntry()));
    svc.set(r);
  }

  delete(k: InstanceKey): void {
    const ns = this.namespaces.get(k.namespace);
    const svc = ns?.get(k.service);
    if (ns === undefined || svc === undefined) return;
    svc.delete(k.instanceId);
    if (svc.size === 0) ns.delete(k.service);
    if (ns.size === 0) this.namespaces.delete(k.namespace);
  }

  clear(): void {
    this.namespaces.clear();
  }
}

/**
 * ViewReads serves a Store's reads from its View: the memory store's
 * state, or the local mirror a remote store (Redis, the cluster primary)
 * keeps. One implementation of the reads for every store.
 */
export abstract class ViewReads {
  protected readonly view = new View();

  get(key: InstanceKey): InstanceRecord | undefined {
    return this.view.get(key);
  }

  service(namespace: string, service: string): ServiceView | undefined {
    return this.view.service(namespace, service);
  }

  services(namespace: string): ReadonlyArray<readonly [string, ServiceView]> {
    return this.view.services(namespace);
  }

  namespaces(): readonly string[] {
    return this.view.namespaceNames();
  }
}
