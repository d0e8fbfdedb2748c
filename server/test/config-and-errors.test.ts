import { Code, ConnectError } from "@connectrpc/connect";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, SETTINGS, loadConfig } from "../src/config.js";
import { Reason, RegistryError } from "../src/domain/errors.js";
import { reasonCodes, toConnectError } from "../src/transport/errors.js";

describe("error mapping", () => {
  it("maps every core reason to an RPC code", () => {
    for (const reason of Object.values(Reason)) {
      expect(reasonCodes[reason], reason).toBeDefined();
      const err = toConnectError(new RegistryError(reason, "x: y"));
      expect(err.code).toBe(reasonCodes[reason]);
      expect(err.rawMessage).toBe("x: y");
    }
    expect(Object.keys(reasonCodes).sort()).toEqual(Object.values(Reason).sort());
  });

  it("turns unexpected errors into a retryable UNAVAILABLE without leaking the stack", () => {
    const err = toConnectError(new TypeError("boom at secret/path.ts:1"));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("registry temporarily unavailable, retry");
    const passthrough = new ConnectError("as is", Code.Aborted);
    expect(toConnectError(passthrough)).toBe(passthrough);
  });
});

describe("configuration", () => {
  it("has defaults for everything", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({
      host: "127.0.0.1",
      port: 7400,
      leaseTtlDefaultMs: 10_000,
      leaseTtlMinMs: 1_000,
      leaseTtlMaxMs: 3_600_000,
      graceMs: 1_000,
      maxMessageBytes: 4 * 1024 * 1024,
      watchOverflow: "reset",
    });
  });

  it("reads flags before environment variables", () => {
    const c = loadConfig(["--port", "9000", "--grace=250ms", "--watch-overflow", "close"], {
      MAXINE_PORT: "8000",
      MAXINE_LEASE_TTL_DEFAULT: "2m",
    });
    expect(c).toMatchObject({ port: 9000, graceMs: 250, watchOverflow: "close", leaseTtlDefaultMs: 120_000 });
  });

  it.each([
    [["--port", "70000"], {}, "--port: must be an integer 0..65535, got \"70000\""],
    [[], { MAXINE_GRACE: "soon" }, "MAXINE_GRACE: must be a duration like 500ms, 10s, 5m or 1h"],
    [[], { MAXINE_WATCH_OVERFLOW: "drop" }, "MAXINE_WATCH_OVERFLOW: must be one of reset, close, got \"drop\""],
    [["--nope", "1"], {}, "--nope: unknown flag"],
    [["--port"], {}, "--port: needs a value"],
    [[], { MAXINE_LEASE_TTL_MIN: "2h" }, "MAXINE_LEASE_TTL_MIN: must not exceed MAXINE_LEASE_TTL_MAX"],
    [[], { MAXINE_LEASE_TTL_DEFAULT: "500ms" }, "MAXINE_LEASE_TTL_DEFAULT: must lie within"],
  ])("rejects %j %j with a message naming the setting", (argv, env, message) => {
    expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadConfig(argv, env)).toThrow(message);
  });

  it("documents every setting, with its flag and default, in the README table", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const s of SETTINGS) {
      const row = readme.split("\n").find((l) => l.startsWith(`| \`${s.env}\``));
      expect(row, `README row for ${s.env}`).toBeDefined();
      expect(row).toContain(`\`${s.flag}\``);
      expect(row).toContain(`\`${s.default}\``);
    }
  });
});
