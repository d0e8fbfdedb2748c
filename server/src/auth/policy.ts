import { readFileSync } from "node:fs";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import { ConfigError } from "../config.js";
import type { Permission } from "../domain/access.js";

export type { Permission };

const PERMISSIONS: readonly Permission[] = ["read", "register", "admin", "config_read", "config_write"];
/**
 * GRANT says what each permission is on two ladders, where a grant of one
 * implies every lower one: the registry's (read < register < admin) and
 * the service configuration's (config_read < config_write). The ladders
 * are apart (read does not give config_read: configuration may hold what
 * discovery should not show), except that admin holds everything.
 */
const GRANT: Record<Permission, { readonly ladder: "level" | "configLevel"; readonly level: number }> = {
  read: { ladder: "level", level: 1 },
  register: { ladder: "level", level: 2 },
  admin: { ladder: "level", level: 3 },
  config_read: { ladder: "configLevel", level: 1 },
  config_write: { ladder: "configLevel", level: 2 },
};
const ROLE = /^[A-Za-z0-9._:-]{1,128}$/;
const GLOB = /^[A-Za-z0-9._*?-]{1,128}$/;
const NO_ROLES: readonly string[] = Object.freeze([]);

/** Matcher is a compiled glob. */
type Matcher = (name: string) => boolean;

/** compileGlob turns a glob (`*` any run of characters, `?` one, anchored) into a matcher. */
export function compileGlob(glob: string): Matcher {
  if (glob === "*") return () => true;
  if (!/[*?]/.test(glob)) return (name) => name === glob;
  const source = glob.replace(/[.*?+^${}()|[\]\\-]/g, (c) => (c === "*" ? "[^]*" : c === "?" ? "[^]" : `\\${c}`));
  const re = new RegExp(`^${source}$`);
  return (name) => re.test(name);
}

interface Rule {
  /** level is the registry permission the rule grants (GRANT), 0 for none. */
  readonly level: number;
  /** configLevel is the configuration permission the rule grants (GRANT; admin grants config_write), 0 for none. */
  readonly configLevel: number;
  readonly namespaces: readonly Matcher[];
  readonly services: readonly Matcher[];
  /** allServices is true when a service pattern is "*": the rule covers every service of its namespaces. */
  readonly allServices: boolean;
}

/** Reader walks a YAML document, turning shape errors into ConfigError naming file:line. */
class Reader {
  constructor(
    readonly file: string,
    readonly lines: LineCounter,
  ) {}

  fail(node: Node | null | undefined, rule: string): never {
    const offset = node?.range?.[0] ?? 0;
    throw new ConfigError(`${this.file}:${this.lines.linePos(offset).line}: ${rule}`);
  }

  map(node: Node | null | undefined, what: string, allowed: readonly string[]): Map<string, { key: Node; value: Node | null }> {
    if (!isMap(node)) this.fail(node, `${what} must be a map`);
    const out = new Map<string, { key: Node; value: Node | null }>();
    for (const pair of node.items) {
      const key = pair.key as Node;
      if (!isScalar(key) || typeof key.value !== "string") this.fail(key, `${what}: keys must be strings`);
      const name = key.value;
      if (allowed.length > 0 && !allowed.includes(name)) this.fail(key, `${what}: unknown key ${JSON.stringify(name)} (expected ${allowed.join(", ")})`);
      out.set(name, { key, value: pair.value as Node | null });
    }
    return out;
  }

  strings(node: Node | null | undefined, what: string): { text: string; node: Node }[] {
    if (!isSeq(node) || node.items.length === 0) this.fail(node, `${what} must be a non-empty list`);
    return node.items.map((item) => {
      const n = item as Node;
      if (!isScalar(n) || typeof n.value !== "string") this.fail(n, `${what}: every entry must be a string`);
      return { text: n.value, node: n };
    });
  }
}

/**
 * Policy is the authorization file: roles grant permissions on namespace and
 * service globs, bindings give principals roles. Default deny. See
 * docs/security.md "Policy file".
 */
export class Policy {
  readonly #roles: ReadonlyMap<string, readonly Rule[]>;
  readonly #bindings: ReadonlyMap<string, readonly string[]>;

  private constructor(roles: ReadonlyMap<string, readonly Rule[]>, bindings: ReadonlyMap<string, readonly string[]>) {
    this.#roles = roles;
    this.#bindings = bindings;
  }

  /** empty is the policy with no roles and no bindings: it denies everything. */
  static empty(): Policy {
    return new Policy(new Map(), new Map());
  }

  /** load reads and parses a policy file; unreadable or invalid ones throw ConfigError naming file:line. */
  static load(path: string): Policy {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(`${path}: cannot read the policy file (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    return Policy.parse(text, path);
  }

  /** parse validates a policy file's text; file names it in errors. */
  static parse(text: string, file: string): Policy {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
    const first = doc.errors[0];
    if (first !== undefined) {
      const line = first.linePos?.[0]?.line ?? lines.linePos(first.pos[0]).line;
      throw new ConfigError(`${file}:${line}: not valid YAML (${first.message.split("\n")[0]})`);
    }
    const r: Reader = new Reader(file, lines);
    if (doc.contents === null) return Policy.empty();
    const top = r.map(doc.contents, "the policy", ["roles", "bindings"]);

    const roles = new Map<string, Rule[]>();
    const rolesNode = top.get("roles");
    if (rolesNode !== undefined && rolesNode.value !== null) {
      for (const [name, { key, value }] of r.map(rolesNode.value, "roles", [])) {
        if (!ROLE.test(name)) r.fail(key, `role ${JSON.stringify(name)}: names are 1..128 letters, digits, '.', '_', ':' or '-'`);
        if (!isSeq(value) || value.items.length === 0) r.fail(value ?? key, `role ${name}: must be a non-empty list of rules`);
        roles.set(name, value.items.map((item) => Policy.#rule(r, item as Node, name)));
      }
    }

    const bindings = new Map<string, readonly string[]>();
    const bindingsNode = top.get("bindings");
    if (bindingsNode !== undefined && bindingsNode.value !== null) {
      for (const [principal, { key, value }] of r.map(bindingsNode.value, "bindings", [])) {
        if (principal === "") r.fail(key, "bindings: a principal name must not be empty");
        const names = r.strings(value ?? key, `bindings of ${JSON.stringify(principal)}`).map(({ text, node }) => {
          if (!roles.has(text)) r.fail(node, `bindings of ${JSON.stringify(principal)}: unknown role ${JSON.stringify(text)} (not defined under roles)`);
          return text;
        });
        bindings.set(principal, Object.freeze([...new Set(names)]));
      }
    }
    return new Policy(roles, bindings);
  }

  static #rule(r: Reader, node: Node, role: string): Rule {
    const what = `role ${role}`;
    const fields = r.map(node, `${what}: a rule`, ["permissions", "namespaces", "services"]);
    for (const need of ["permissions", "namespaces", "services"]) {
      if (!fields.has(need)) r.fail(node, `${what}: a rule needs ${need}`);
    }
    const levels = { level: 0, configLevel: 0 };
    for (const { text, node: n } of r.strings(fields.get("permissions")!.value, `${what}: permissions`)) {
      if (!(PERMISSIONS as readonly string[]).includes(text)) r.fail(n, `${what}: unknown permission ${JSON.stringify(text)} (read, register, admin, config_read or config_write)`);
      const grant = GRANT[text as Permission];
      levels[grant.ladder] = Math.max(levels[grant.ladder], grant.level);
    }
    const { level } = levels;
    const configLevel = level >= GRANT.admin.level ? GRANT.config_write.level : levels.configLevel;
    const globs = (field: "namespaces" | "services") =>
      r.strings(fields.get(field)!.value, `${what}: ${field}`).map(({ text, node: n }) => {
        if (!GLOB.test(text)) r.fail(n, `${what}: bad glob ${JSON.stringify(text)} in ${field} (1..128 letters, digits, '.', '_', '-', with * for any run and ? for one character)`);
        return text;
      });
    const namespaces = globs("namespaces");
    const services = globs("services");
    return { level, configLevel, namespaces: namespaces.map(compileGlob), services: services.map(compileGlob), allServices: services.includes("*") };
  }

  /** rolesOf lists the roles the policy binds to a principal name (added to those its credential carries). */
  rolesOf(principalName: string): readonly string[] {
    return this.#bindings.get(principalName) ?? NO_ROLES;
  }

  /**
   * can reports whether a principal with these roles holds perm on
   * namespace/service. Default deny. Globs are compiled at parse time, so a
   * check costs a few matcher calls per rule of the held roles (bench/auth-checks.mjs:
   * 130-340 ns); a memo keyed by the arguments measured slower (760 ns).
   */
  can(roles: readonly string[], perm: Permission, namespace: string, service: string): boolean {
    if (roles.length === 0) return false;
    const { ladder, level: need } = GRANT[perm];
    return this.#some(roles, (rule) => rule[ladder] >= need && rule.namespaces.some((m) => m(namespace)) && rule.services.some((m) => m(service)));
  }

  /** canAll reports whether perm holds for every service of namespace (a rule with service pattern "*" covering it). */
  canAll(roles: readonly string[], perm: Permission, namespace: string): boolean {
    const { ladder, level: need } = GRANT[perm];
    return this.#some(roles, (rule) => rule[ladder] >= need && rule.allServices && rule.namespaces.some((m) => m(namespace)));
  }

  /** canAny reports whether perm may hold for some service of namespace: a rule at that level covers the namespace (whatever its service patterns). */
  canAny(roles: readonly string[], perm: Permission, namespace: string): boolean {
    const { ladder, level: need } = GRANT[perm];
    return this.#some(roles, (rule) => rule[ladder] >= need && rule.namespaces.some((m) => m(namespace)));
  }

  #some(roles: readonly string[], test: (rule: Rule) => boolean): boolean {
    for (const role of roles) {
      const rules = this.#roles.get(role);
      if (rules !== undefined && rules.some(test)) return true;
    }
    return false;
  }
}
