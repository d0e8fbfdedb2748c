import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileGlob, Policy, type Permission } from "../src/auth/policy.js";
import { ConfigError } from "../src/config.js";

const EXAMPLE = `
roles:
  payments-writer:
    - permissions: [register]
      namespaces: [prod]
      services: ["payments*"]
  reader:
    - { permissions: [read], namespaces: ["*"], services: ["*"] }
  ops:
    - permissions: [admin]
      namespaces: ["team-?"]
      services: ["*"]
  checkout-reader:
    - permissions: [read]
      namespaces: [prod, staging]
      services: [checkout, "cart-*-api"]
bindings:
  "spiffe://example.org/ns/prod/sa/payments": [payments-writer]
  alice: [reader, ops]
`;

describe("Policy", () => {
  const p = Policy.parse(EXAMPLE, "policy.yaml");

  it("matches globs: * any run, ? one character, anchored", () => {
    const w = ["payments-writer"];
    expect(p.can(w, "register", "prod", "payments")).toBe(true);
    expect(p.can(w, "register", "prod", "payments-eu")).toBe(true);
    expect(p.can(w, "register", "prod", "old-payments")).toBe(false);
    expect(p.can(w, "register", "production", "payments")).toBe(false);
    const c = ["checkout-reader"];
    expect(p.can(c, "read", "staging", "cart-eu-api")).toBe(true);
    expect(p.can(c, "read", "staging", "cart--api")).toBe(true);
    expect(p.can(c, "read", "staging", "cart-api")).toBe(false);
    expect(p.can(c, "read", "staging", "checkout2")).toBe(false);
    expect(p.can(["ops"], "admin", "team-a", "x")).toBe(true);
    expect(p.can(["ops"], "admin", "team-ab", "x")).toBe(false);
    expect(p.can(["ops"], "admin", "team-", "x")).toBe(false);
    expect(compileGlob("a.b")("axb")).toBe(false);
    expect(compileGlob("a.b")("a.b")).toBe(true);
  });

  it("implies: admin grants register and read, register grants read, read grants nothing more", () => {
    expect(p.can(["ops"], "register", "team-b", "svc")).toBe(true);
    expect(p.can(["ops"], "read", "team-b", "svc")).toBe(true);
    expect(p.can(["payments-writer"], "read", "prod", "payments")).toBe(true);
    expect(p.can(["payments-writer"], "admin", "prod", "payments")).toBe(false);
    expect(p.can(["payments-writer"], "read", "prod", "checkout")).toBe(false);
    expect(p.can(["reader"], "register", "prod", "payments")).toBe(false);
  });

  it("denies by default: no roles, unknown roles, an empty policy", () => {
    expect(p.can([], "read", "prod", "payments")).toBe(false);
    expect(p.can(["nobody"], "read", "prod", "payments")).toBe(false);
    expect(p.canAll([], "read", "prod")).toBe(false);
    const empty = Policy.empty();
    expect(empty.can(["reader"], "read", "prod", "x")).toBe(false);
    expect(Policy.parse("", "empty.yaml").can(["reader"], "read", "prod", "x")).toBe(false);
    expect(Policy.parse("# nothing\n", "empty.yaml").rolesOf("alice")).toEqual([]);
  });

  it("canAll holds only with a rule whose service pattern is * for that namespace", () => {
    expect(p.canAll(["reader"], "read", "prod")).toBe(true);
    expect(p.canAll(["reader"], "register", "prod")).toBe(false);
    expect(p.canAll(["payments-writer"], "read", "prod")).toBe(false);
    expect(p.canAll(["checkout-reader"], "read", "prod")).toBe(false);
    expect(p.canAll(["ops"], "register", "team-x")).toBe(true);
    expect(p.canAll(["ops"], "register", "prod")).toBe(false);
  });

  it("canAny holds with any rule covering the namespace, whatever its services (a filtered namespace-wide watch)", () => {
    expect(p.canAny(["payments-writer"], "read", "prod")).toBe(true);
    expect(p.canAny(["payments-writer"], "read", "staging")).toBe(false);
    expect(p.canAny(["payments-writer"], "admin", "prod")).toBe(false);
    expect(p.canAny(["checkout-reader"], "read", "staging")).toBe(true);
    expect(p.canAny([], "read", "prod")).toBe(false);
  });

  it("binds principals to roles", () => {
    expect(p.rolesOf("spiffe://example.org/ns/prod/sa/payments")).toEqual(["payments-writer"]);
    expect(p.rolesOf("alice")).toEqual(["reader", "ops"]);
    expect(p.rolesOf("bob")).toEqual([]);
    const roles = [...p.rolesOf("alice"), "from-token"];
    expect(p.can(roles, "admin", "team-z", "a")).toBe(true);
  });

  it.each([
    ["roles:\n  r:\n    - permissions: [write]\n      namespaces: [a]\n      services: [b]\n", 3, 'role r: unknown permission "write" (read, register, admin, config_read or config_write)'],
    ["roles:\n  r:\n    - permissions: [read]\n      namespaces: [a]\n      services: [b]\nbindings:\n  alice: [r, writer]\n", 7, 'bindings of "alice": unknown role "writer"'],
    ["roles:\n  r:\n    - permissions: [read]\n      namespaces: [\"a[b]\"]\n      services: [b]\n", 4, 'role r: bad glob "a[b]" in namespaces'],
    ["roles:\n  r:\n    - permissions: [read]\n      namespaces: [a]\n      services: [\"\"]\n", 5, 'role r: bad glob "" in services'],
    ["roles:\n  r:\n    - permissions: [read]\n      namespaces: [a]\n      services: [b]\n      tags: [x]\n", 6, 'role r: a rule: unknown key "tags"'],
    ["roles: {}\nusers: {}\n", 2, 'the policy: unknown key "users" (expected roles, bindings)'],
    ["roles:\n  r:\n    - permissions: [read]\n      services: [b]\n", 3, "role r: a rule needs namespaces"],
    ["roles:\n  r:\n    - permissions: []\n      namespaces: [a]\n      services: [b]\n", 3, "role r: permissions must be a non-empty list"],
    ["roles:\n  r: []\n", 2, "role r: must be a non-empty list of rules"],
    ["roles:\n  \"bad role\":\n    - { permissions: [read], namespaces: [a], services: [b] }\n", 2, 'role "bad role": names are 1..128'],
    ["bindings:\n  alice: reader\n", 2, 'bindings of "alice" must be a non-empty list'],
    ["- just\n- a list\n", 1, "the policy must be a map"],
    ["roles:\n  r:\n    - permissions: [read\n", 4, "not valid YAML"],
    ["roles: {}\nroles: {}\n", 2, "not valid YAML"],
  ])("rejects %j naming file:%i and the rule", (text, line, rule) => {
    let err: unknown;
    try {
      Policy.parse(text, "/etc/maxine/policy.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^/etc/maxine/policy\\.yaml:${line}: `));
    expect((err as Error).message).toContain(rule);
  });

  it("load names an unreadable file", () => {
    expect(() => Policy.load("/nonexistent/policy.yaml")).toThrow("/nonexistent/policy.yaml: cannot read the policy file (ENOENT)");
  });
});

// A naive reference: globs matched by recursion, permissions by explicit implication.
function naiveMatch(glob: string, name: string): boolean {
  if (glob === "") return name === "";
  if (glob[0] === "*") return naiveMatch(glob.slice(1), name) || (name !== "" && naiveMatch(glob, name.slice(1)));
  if (name === "") return false;
  return (glob[0] === "?" || glob[0] === name[0]) && naiveMatch(glob.slice(1), name.slice(1));
}

const IMPLIED: Record<Permission, Permission[]> = {
  read: ["read"],
  register: ["register", "read"],
  admin: ["admin", "register", "read", "config_write", "config_read"],
  config_read: ["config_read"],
  config_write: ["config_write", "config_read"],
};

interface RuleSpec {
  permissions: Permission[];
  namespaces: string[];
  services: string[];
}

function naiveCan(roles: Record<string, RuleSpec[]>, held: string[], perm: Permission, ns: string, svc: string): boolean {
  return held.some((r) =>
    (roles[r] ?? []).some(
      (rule) => rule.permissions.some((p) => IMPLIED[p].includes(perm)) && rule.namespaces.some((g) => naiveMatch(g, ns)) && rule.services.some((g) => naiveMatch(g, svc)),
    ),
  );
}

describe("Policy.can property", () => {
  const alphabet = ["a", "b", ".", "-"];
  const name = fc.string({ unit: fc.constantFrom(...alphabet), minLength: 1, maxLength: 6 });
  const glob = fc.string({ unit: fc.constantFrom(...alphabet, "*", "?"), minLength: 1, maxLength: 6 });
  const perm = fc.constantFrom<Permission>("read", "register", "admin", "config_read", "config_write");
  const rule = fc.record({ permissions: fc.uniqueArray(perm, { minLength: 1, maxLength: 3 }), namespaces: fc.array(glob, { minLength: 1, maxLength: 3 }), services: fc.array(glob, { minLength: 1, maxLength: 3 }) });
  const roles = fc.dictionary(fc.constantFrom("r1", "r2", "r3"), fc.array(rule, { minLength: 1, maxLength: 3 }), { minKeys: 1 });

  it("agrees with a naive reference over random patterns, names and roles", () => {
    fc.assert(
      fc.property(roles, fc.subarray(["r1", "r2", "r3", "r4"]), perm, name, name, (spec, held, p, ns, svc) => {
        const yaml = JSON.stringify({ roles: spec }); // JSON is YAML
        const policy = Policy.parse(yaml, "prop.yaml");
        const expected = naiveCan(spec, held, p, ns, svc);
        expect(policy.can(held, p, ns, svc)).toBe(expected);
        expect(policy.can(held, p, ns, svc)).toBe(expected); // again, from the cache
        const all = held.some((r) => (spec[r] ?? []).some((rule) => rule.services.includes("*") && rule.permissions.some((q) => IMPLIED[q].includes(p)) && rule.namespaces.some((g) => naiveMatch(g, ns))));
        expect(policy.canAll(held, p, ns)).toBe(all);
        const any = held.some((r) => (spec[r] ?? []).some((rule) => rule.permissions.some((q) => IMPLIED[q].includes(p)) && rule.namespaces.some((g) => naiveMatch(g, ns))));
        expect(policy.canAny(held, p, ns)).toBe(any);
      }),
      { numRuns: 500 },
    );
  });
});

describe("docs/security.md", () => {
  it("its policy example parses and grants what the text says", () => {
    const doc = readFileSync(new URL("../../docs/security.md", import.meta.url), "utf8");
    const block = /## Policy file[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
    const p = Policy.parse(block, "docs/security.md");
    const payments = p.rolesOf("spiffe://example.org/ns/prod/sa/payments");
    expect(p.can(payments, "register", "prod", "payments-eu")).toBe(true);
    expect(p.can(payments, "read", "prod", "payments-eu")).toBe(true);
    expect(p.can(payments, "register", "staging", "payments")).toBe(false);
    expect(p.canAll(p.rolesOf("alice"), "read", "anything")).toBe(true);
  });
});

describe("Policy.can with odd inputs", () => {
  it("matches roles and names exactly, whatever characters they hold", () => {
    const p = Policy.parse(`roles:\n  a:\n    - { permissions: [read], namespaces: ["x"], services: ["y"] }\n`, "p.yaml");
    expect(p.can(["a"], "read", "x", "y")).toBe(true);
    expect(p.can(["a\nb"], "read", "x", "y")).toBe(false);
    expect(p.can(["a", "b"], "read", "x\u0000y", "")).toBe(false);
    expect(p.can(["a"], "read", "x", "y")).toBe(true);
  });
});
