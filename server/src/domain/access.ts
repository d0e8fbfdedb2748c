import { Reason, RegistryError } from "./errors.js";

/**
 * Permission is what a principal may do on a service: read (Discover,
 * ListServices, WatchServices), register (Register, Heartbeat, Deregister of
 * its own instances), admin (anything, other principals' instances and the
 * configuration included); config_read (ConfigService Get, List, History,
 * Watch) and config_write (Put, Delete, Rollback, and config_read), which
 * the registry permissions below admin do not give.
 */
export type Permission = "read" | "register" | "admin" | "config_read" | "config_write";

/**
 * Access is what the caller of one operation may do, as the core sees it:
 * who it is (instances it registers belong to it) and which permissions it
 * holds where. The security layer builds one per call from its credential
 * and the policy; the core only asks.
 */
export interface Access {
  /** principal names the caller: the owner of the instances it registers. */
  readonly principal: string;
  /** allows reports whether the caller holds perm on namespace/service (admin implies register, register implies read). */
  allows(perm: Permission, namespace: string, service: string): boolean;
  /** allowsAll reports whether perm holds for every service of namespace (namespace-wide reads). */
  allowsAll(perm: Permission, namespace: string): boolean;
  /** allowsAny reports whether perm may hold for some service of namespace, existing or not yet (a rule covers the namespace): a namespace-wide watch is then filtered to the services allowed. */
  allowsAny(perm: Permission, namespace: string): boolean;
}

/** ANONYMOUS_PRINCIPAL owns every instance while authentication is off. */
export const ANONYMOUS_PRINCIPAL = "anonymous";

/** OPEN is the access of every caller while authentication is off: everything, as "anonymous". */
export const OPEN: Access = {
  principal: ANONYMOUS_PRINCIPAL,
  allows: () => true,
  allowsAll: () => true,
  allowsAny: () => true,
};

/** require throws PERMISSION_DENIED naming the principal, the permission and where, unless access allows it. */
export function requirePermission(access: Access, perm: Permission, namespace: string, service: string): void {
  if (!access.allows(perm, namespace, service)) throw denied(access, perm, `${namespace}/${service}`);
}

/** denied is the PERMISSION_DENIED error for a principal lacking perm on what. */
export function denied(access: Access, perm: Permission, what: string): RegistryError {
  return new RegistryError(Reason.PERMISSION_DENIED, `permission denied: principal ${JSON.stringify(access.principal)} lacks the ${perm} permission on ${what}`);
}

/** notOwner is the PERMISSION_DENIED error for a change to another principal's instance. */
export function notOwner(access: Access, key: string, owner: string): RegistryError {
  return ownedByOther(key, owner, access.principal);
}

/** ownedByOther is the PERMISSION_DENIED error for caller changing the instance at key, which owner owns (the core's check and the stores' atomic one answer alike). */
export function ownedByOther(key: string, owner: string, caller: string): RegistryError {
  return new RegistryError(
    Reason.PERMISSION_DENIED,
    `permission denied: instance ${key} belongs to principal ${JSON.stringify(owner)}; only its owner or a principal with the admin permission may change it (caller ${JSON.stringify(caller)})`,
  );
}
