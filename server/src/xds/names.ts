import { invalid } from "../domain/errors.js";
import { isEmptyFilter, type FilterSpec } from "../domain/filter.js";
import { DEFAULT_NAMESPACE } from "../domain/instance.js";
import { filterOf, namespaceOf, serviceOf, type Limits } from "../registry/validate.js";

/**
 * XdsName is one xDS resource name read as a Maxine service view (docs/xds.md):
 * `payments` (namespace default), `ns/payments`, and filtered views
 * `payments;version=2.1.0`, `payments;tag=canary;tag=eu`. The same string
 * names the Listener, the RouteConfiguration, the Cluster and the
 * ClusterLoadAssignment of the view.
 */
export interface XdsName {
  /** name is the resource name exactly as the client sent it (xDS names are opaque: answers carry it back unchanged). */
  readonly name: string;
  readonly namespace: string;
  readonly service: string;
  readonly filter: FilterSpec;
  /** matchAll: no filter (a wildcard subscription lists only these). */
  readonly matchAll: boolean;
}

/**
 * parseXdsName reads a resource name; field names it in errors
 * (`resource_names[2]: ...`). Filter values are percent-decoded (`;`, `=`
 * and `%` inside a value are written %3B, %3D, %25) and checked by the
 * rules of a WatchServices filter (MAXINE_MAX_TAGS, MAXINE_MAX_TAG_LENGTH).
 * The work is linear in the name, which MAXINE_MAX_MESSAGE_BYTES bounds.
 */
export function parseXdsName(field: string, name: string, limits: Limits): XdsName {
  const parts = name.split(";");
  const path = parts[0]!;
  const slash = path.indexOf("/");
  const namespace = slash < 0 ? DEFAULT_NAMESPACE : namespaceOf(`${field} (namespace)`, path.slice(0, slash));
  if (slash === 0) throw invalid(`${field} (namespace)`, `must not be empty before "/", got ${quote(name)}`);
  const service = serviceOf(`${field} (service)`, slash < 0 ? path : path.slice(slash + 1));
  let version = "";
  const tags: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const eq = parts[i]!.indexOf("=");
    const key = eq < 0 ? parts[i]! : parts[i]!.slice(0, eq);
    const value = eq < 0 ? "" : decode(field, parts[i]!.slice(eq + 1));
    if (value === "") throw invalid(field, `filter ${quote(parts[i]!)} must be key=value with a value (version=..., tag=...), in ${quote(name)}`);
    if (key === "version") {
      if (version !== "") throw invalid(field, `version may be given once, in ${quote(name)}`);
      version = value;
    } else if (key === "tag") tags.push(value);
    else throw invalid(field, `unknown filter ${quote(key)}: the filters are version= and tag=, in ${quote(name)}`);
  }
  const filter = filterOf(`${field} (filter)`, { tags, version, zone: "", metadata: {} }, limits);
  return { name, namespace, service, filter, matchAll: isEmptyFilter(filter) };
}

/** xdsNameOf is the unfiltered resource name of a service: `service` in namespace default, `namespace/service` otherwise. */
export function xdsNameOf(namespace: string, service: string): string {
  return namespace === DEFAULT_NAMESPACE ? service : `${namespace}/${service}`;
}

/** encodeFilterValue percent-encodes what a filter value may not carry as is (`;`, `=`, `%`), for clients that build names. */
export function encodeFilterValue(value: string): string {
  return value.replace(/[%;=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decode(field: string, value: string): string {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    throw invalid(field, `filter value ${quote(value)} is not valid percent-encoding (write ; = % as %3B %3D %25)`);
  }
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}
