import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "../../server/test/support/server-process.js";
import { makeTestCerts, type TestCerts } from "../../server/test/support/tls-certs.js";
import { exited, Lines, runCli, spawnCli } from "./support/cli.js";

// The CLI's credentials against a real server with TLS (certificates from
// scripts/make-test-certs.sh), client certificates requested, a tokens file
// and a policy: the command as a child process, its output and exit code.

const TOKENS = { ops: "tok-cli-ops-2b7c9e", writer: "tok-cli-writer-5a1d3f", reader: "tok-cli-reader-8e4f6a" } as const;
const sha = (t: string) => createHash("sha256").update(t).digest("hex");
const SPIFFE = "spiffe://maxine.test/ns/prod/sa/payments";
let certs: TestCerts;
let server: ServerProcess;
let https: string;

beforeAll(async () => {
  certs = await makeTestCerts();
  await writeFile(
    certs.path("tokens"),
    [`ops sha256:${sha(TOKENS.ops)} admin`, `svc-carts sha256:${sha(TOKENS.writer)} writer`, `dashboard sha256:${sha(TOKENS.reader)} reader`].join("\n") + "\n",
  );
  await writeFile(
    certs.path("policy.yaml"),
    `roles:
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
  writer:
    - { permissions: [register], namespaces: ["*"], services: ["carts*"] }
  reader:
    - { permissions: [read], namespaces: ["*"], services: ["*"] }
bindings:
  "${SPIFFE}": [reader]
`,
  );
  for (const [name, token] of Object.entries(TOKENS)) await writeFile(certs.path(`${name}.token`), `${token}\n`, { mode: 0o600 });
  server = await startServerProcess({
    MAXINE_TLS_CERT: certs.path("server.pem"),
    MAXINE_TLS_KEY: certs.path("server-key.pem"),
    MAXINE_TLS_CA: certs.path("ca.pem"),
    MAXINE_TLS_CLIENT_AUTH: "request",
    MAXINE_AUTH_TOKENS_FILE: certs.path("tokens"),
    MAXINE_AUTH_POLICY_FILE: certs.path("policy.yaml"),
    MAXINE_LEASE_TTL_MIN: "100ms",
  });
  https = `https://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server?.stop();
  await certs?.remove();
});

const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at |Error: /);

describe("credentials: TLS and tokens", () => {
  it("a token file and --cacert: a register as the token's principal that others see, and a read", async () => {
    const s = ["--server", https, "--cacert", certs.path("ca.pem")];
    const reg = spawnCli([...s, "--token-file", certs.path("writer.token"), "register", "carts", "--id", "carts-1", "--host", "10.0.2.1", "--port", "7000", "--ttl", "1s"]);
    const out = new Lines(reg);
    try {
      await out.waitFor((l) => l.startsWith("registered default/carts/carts-1"));
      // past the TTL: the register command's heartbeat stream keeps it, under the writer's token
      await new Promise((r) => setTimeout(r, 1500));
      const read = await runCli([...s, "--token-file", certs.path("reader.token"), "instances", "carts", "-o", "json"]);
      expect(read).toMatchObject({ code: 0, stderr: "" });
      expect(JSON.parse(read.stdout).instances.map((i: { instanceId: string; owner: string }) => [i.instanceId, i.owner])).toEqual([["carts-1", "svc-carts"]]);
    } finally {
      reg.kill("SIGINT");
      expect(await exited(reg)).toBe(0);
    }
    expect(out.lines.at(-1)).toBe("deregistered default/carts/carts-1 (SIGINT)");
  });

  it("environment variables: MAXINE_ADDR, MAXINE_TOKEN, MAXINE_CACERT", async () => {
    const r = await runCli(["services"], { MAXINE_ADDR: https, MAXINE_TOKEN: TOKENS.ops, MAXINE_CACERT: certs.path("ca.pem") });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const file = await runCli(["services"], { MAXINE_ADDR: https, MAXINE_TOKEN_FILE: certs.path("ops.token"), MAXINE_CACERT: certs.path("ca.pem") });
    expect(file).toMatchObject({ code: 0, stderr: "" });
  });

  it("mTLS: --cert and --key make the certificate's identity the principal (bound to reader), MAXINE_CERT/MAXINE_KEY alike", async () => {
    const flags = await runCli(["--server", https, "--cacert", certs.path("ca.pem"), "--cert", certs.path("client.pem"), "--key", certs.path("client-key.pem"), "services"]);
    expect(flags).toMatchObject({ code: 0, stderr: "" });
    const env = await runCli(["services"], { MAXINE_ADDR: https, MAXINE_CACERT: certs.path("ca.pem"), MAXINE_CERT: certs.path("client.pem"), MAXINE_KEY: certs.path("client-key.pem") });
    expect(env).toMatchObject({ code: 0, stderr: "" });
    // the reader binding may not register
    const denied = await runCli(["--server", https, "--cacert", certs.path("ca.pem"), "--cert", certs.path("client.pem"), "--key", certs.path("client-key.pem"), "deregister", "carts", "x"]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain(`maxine: PermissionDenied: permission denied: principal "${SPIFFE}" lacks the register permission on default/carts`);
  });

  it("no token, or a wrong one: the server's UNAUTHENTICATED message, exit 1, no stack trace, the token never shown", async () => {
    const none = await runCli(["--server", https, "--cacert", certs.path("ca.pem"), "services"]);
    expect(none).toMatchObject({ code: 1, stdout: "" });
    expect(none.stderr).toMatch(/^maxine: Unauthenticated: unauthenticated: no credentials/);
    noStack(none.stderr);
    const wrong = await runCli(["--server", https, "--cacert", certs.path("ca.pem"), "--token", "tok-cli-not-issued", "services"]);
    expect(wrong).toMatchObject({ code: 1, stdout: "" });
    expect(wrong.stderr).toContain("maxine: Unauthenticated: unauthenticated: the bearer token is not one this server knows");
    expect(wrong.stderr).not.toContain("tok-cli-not-issued");
    noStack(wrong.stderr);
  });

  it("a server certificate it cannot verify (no --cacert) fails with exit 1 and one line", async () => {
    const r = await runCli(["--server", https, "--token", TOKENS.ops, "services"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^maxine: .*(certificate|self-signed|issuer)/i);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  it("bad credential flags are usage errors (exit 2) naming the flag", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--server", `http://127.0.0.1:${server.port}`, "--cacert", certs.path("ca.pem"), "services"], /--cacert, --cert and --key need https:\/\/ servers/],
      [["--server", https, "--cacert", "/nonexistent/ca.pem", "services"], /--cacert: cannot read "\/nonexistent\/ca.pem" \(ENOENT\)/],
      [["--server", https, "--cert", certs.path("client.pem"), "services"], /--cert and --key go together/],
      [["--server", https, "--token-file", "/nonexistent/token", "services"], /--token-file: cannot read/],
      [["--server", https, "--token", "a", "--token-file", certs.path("ops.token"), "services"], /--token and --token-file: give one, not both/],
    ];
    for (const [args, want] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(want);
      noStack(r.stderr);
    }
  });
});
