import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../../server/test/support/in-process.js";
import { startServerProcess, type ServerProcess } from "../../server/test/support/server-process.js";
import { exited, Lines, runCli, spawnCli } from "./support/cli.js";

// The `maxine` command as a person or a script runs it: a child process
// against a real server process, its output read from a pipe (so JSON and
// plain tables, never colors), its exit code checked. The live table on a
// terminal is in terminal.test.ts.

let server: ServerProcess;
let s: string[]; // --server for the running server

beforeAll(async () => {
  server = await startServerProcess();
  s = ["--server", `127.0.0.1:${server.port}`];
  // one instance registered by curl's way (unary Register, long lease), one draining
  for (const [id, status, zone] of [
    ["orders-1", "SERVING_STATUS_SERVING", "eu-1a"],
    ["orders-2", "SERVING_STATUS_DRAINING", "eu-1b"],
  ] as const) {
    const r = await postJson(server.url, "Register", {
      instance: { service: "orders", instanceId: id, host: "10.0.1.1", port: 9000, zone, version: "1.2.0", tags: ["v1", "grpc"], status },
      leaseTtl: "600s",
    });
    expect(r.status).toBe(200);
  }
});
afterAll(async () => {
  await server?.stop();
});

const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);

describe("usage", () => {
  it("exits 2 with commander's complaint and the command's usage line for a bad flag", async () => {
    const r = await runCli([...s, "discover", "orders", "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error: unknown option '--bogus'");
    expect(r.stderr).toContain("Usage: maxine discover [options] <service>");
    expect(r.stdout).toBe("");
  });

  it("exits 2 for a missing argument, a bad value, an unknown command or a bad --server", async () => {
    for (const args of [["instances"], ["register", "x", "--id", "a", "--host", "h", "--port", "70000"], ["register", "x", "--id", "a", "--host", "h", "--port", "1", "--load", "-1"], ["nope"], ["--server", "ftp://x", "services"], ["--output", "yaml", "services"]]) {
      const r = await runCli(args);
      expect(r.code, args.join(" ")).toBe(2);
      noStack(r.stderr);
    }
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Exit codes: 0 ok, 1 error (the server refused or is unreachable), 2 usage, 3 not found.");
  });
});

describe("reading", () => {
  it("services: counts by status, as a table and as JSON", async () => {
    const table = await runCli([...s, "services"]);
    expect(table).toMatchObject({ code: 0, stderr: "" });
    expect(table.stdout).toBe("SERVICE  INSTANCES  SERVING  DRAINING  NOT_SERVING\norders   2          1        1         0\n");
    const json = await runCli([...s, "services", "-o", "json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ namespace: "default", services: [{ service: "orders", instances: 2, serving: 1, draining: 1, notServing: 0 }] });
    const empty = await runCli([...s, "--namespace", "nobody-here", "services"]);
    expect(empty).toMatchObject({ code: 0, stdout: "no services in namespace nobody-here\n" });
  });

  it("instances: one row per instance; JSON in the protobuf mapping; exit 3 for a service with none", async () => {
    const table = await runCli([...s, "instances", "orders"]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+ADDRESS\s+ZONE\s+VERSION\s+TAGS\s+WEIGHT\s+STATUS\s+AGE\s+LOAD\s+LEASE LEFT$/);
    // registered by unary Register with a 600 s lease: no load reported, 9m5xs or 10m00s left
    expect(lines[1]).toMatch(/^orders-1\s+10\.0\.1\.1:9000\s+eu-1a\s+1\.2\.0\s+grpc,v1\s+100\s+SERVING\s+\d+s\s+-\s+(9m5\ds|10m00s)$/);
    expect(lines[2]).toMatch(/^orders-2\s+10\.0\.1\.1:9000\s+eu-1b\s+1\.2\.0\s+grpc,v1\s+100\s+DRAINING\s+\d+s\s+-\s+(9m5\ds|10m00s)$/);
    const json = JSON.parse((await runCli([...s, "instances", "orders", "--output", "json"])).stdout);
    expect(json.instances.map((i: { instanceId: string; status: string }) => [i.instanceId, i.status])).toEqual([
      ["orders-1", "SERVING_STATUS_SERVING"],
      ["orders-2", "SERVING_STATUS_DRAINING"],
    ]);
    const none = await runCli([...s, "instances", "billing"]);
    expect(none).toMatchObject({ code: 3, stdout: "", stderr: "maxine: service default/billing has no instances\n" });
  });

  it("instances: LOAD and LEASE LEFT of a session beating a load, in the table and in JSON; still listed once drained", async () => {
    const reg = spawnCli([...s, "register", "loads", "--id", "loads-1", "--host", "10.0.6.1", "--port", "7003", "--ttl", "3s", "--load", "7.25"]);
    try {
      await new Lines(reg).waitFor((l) => l.startsWith("registered default/loads/loads-1"));
      // the load rides on the beats after the first (every second with a 3 s TTL)
      const deadline = Date.now() + 5_000;
      let row = "";
      while (!/\s7\.25\s/.test(row)) {
        if (Date.now() > deadline) throw new Error(`no load in ${JSON.stringify(row)}`);
        await new Promise((r) => setTimeout(r, 100));
        const table = await runCli([...s, "instances", "loads"]);
        expect(table.code).toBe(0);
        row = table.stdout.split("\n")[1] ?? "";
      }
      // beaten every second with a 3 s TTL: between 1.x and 3.0 s left
      expect(row).toMatch(/^loads-1\s+10\.0\.6\.1:7003\s+-\s+-\s+-\s+100\s+SERVING\s+\d+s\s+7\.25\s+[0-3]\.\ds$/);
      const left = Number(/([0-9.]+)s$/.exec(row)![1]);
      expect(left).toBeGreaterThan(0.5);
      expect(left).toBeLessThanOrEqual(3);

      const json = JSON.parse((await runCli([...s, "instances", "loads", "-o", "json"])).stdout);
      const [i] = json.instances;
      expect(i).toMatchObject({ instanceId: "loads-1", reportedLoad: 7.25 });
      const expiresIn = Date.parse(i.leaseExpiresAt) - Date.now();
      expect(expiresIn).toBeGreaterThan(0);
      expect(expiresIn).toBeLessThanOrEqual(3_000);

      // drained by an operator, nothing of the service is SERVING: still listed, with its live state
      expect((await runCli([...s, "drain", "loads", "loads-1"])).code).toBe(0);
      const drained = await runCli([...s, "instances", "loads"]);
      expect(drained.code).toBe(0);
      expect(drained.stdout.split("\n")[1]).toMatch(/^loads-1\s.*\sDRAINING \(operator\)\s+\d+s\s+7\.25\s+[0-3]\.\ds$/);
    } finally {
      reg.kill("SIGINT");
      await exited(reg);
    }
  });

  it("discover: the server's choice with strategy, hash key, zone and filters; exit 3 with the server's message when nothing matches", async () => {
    const one = await runCli([...s, "discover", "orders", "--strategy", "consistent-hash", "--hash-key", "user-42", "--prefer-zone", "eu-1a", "--tag", "v1"]);
    expect(one.code).toBe(0);
    expect(one.stdout.split("\n")[1]).toMatch(/^\*\s+orders-1\s+10\.0\.1\.1:9000\s+eu-1a/);
    const meta = await runCli([...s, "-o", "json", "discover", "orders", "--metadata", "x=y"]);
    expect(meta).toMatchObject({ code: 3, stdout: "" }); // no instance has metadata x=y
    const json = JSON.parse((await runCli([...s, "-o", "json", "discover", "orders", "--all"])).stdout);
    expect(json.instance.instanceId).toBe("orders-1");
    expect(json.instances).toHaveLength(2);
    const none = await runCli([...s, "discover", "orders", "--zone", "us-1a"]);
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/^maxine: NotFound: .*orders/);
    noStack(none.stderr);
  });

  it("health: SERVING for the server and the registry; exit 1 for a server that does not answer", async () => {
    const ok = await runCli([...s, "health"]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/"" \(server\)\s+SERVING\n/);
    expect(ok.stdout).toMatch(/maxine\.registry\.v1\.RegistryService\s+SERVING\n/);
    const json = JSON.parse((await runCli([...s, "health", "-o", "json"])).stdout);
    expect(json).toMatchObject({ ok: true, checks: [{ service: "", status: "SERVING" }, { service: "maxine.registry.v1.RegistryService", status: "SERVING" }] });
    const down = await runCli(["--server", "127.0.0.1:1", "health"]);
    expect(down.code).toBe(1);
    expect(down.stdout).toContain("UNREACHABLE");
  });

  it("fails over to the next --server (or MAXINE_ADDR entry) when one does not answer", async () => {
    const flags = await runCli(["--server", "127.0.0.1:1", ...s, "services", "-o", "json"]);
    expect(flags.code).toBe(0);
    const env = await runCli(["services", "-o", "json"], { MAXINE_ADDR: `127.0.0.1:1,127.0.0.1:${server.port}` });
    expect(env.code).toBe(0);
    expect(JSON.parse(env.stdout).services[0].service).toBe("orders");
    const unreachable = await runCli(["--server", "127.0.0.1:1", "services"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^maxine: Unavailable: /);
    noStack(unreachable.stderr);
  });
});

describe("writing", () => {
  it("register keeps the instance alive past three TTLs, then deregisters it on SIGINT", async () => {
    const watch = spawnCli([...s, "watch", "carts"]);
    const events = new Lines(watch);
    const reg = spawnCli([...s, "register", "carts", "--id", "carts-1", "--host", "10.0.2.1", "--port", "7000", "--ttl", "1s", "--tag", "beta"]);
    const regOut = new Lines(reg);
    try {
      await regOut.waitFor((l) => l === "registered default/carts/carts-1 at 10.0.2.1:7000; kept alive on a heartbeat stream, Ctrl-C deregisters");
      const added = await events.waitFor((l) => l.includes('"type":"ADDED"'));
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 3_500)); // three 1 s leases and a half
      expect(Date.now() - t0).toBeGreaterThanOrEqual(3_000);
      expect(events.lines.slice(added.index + 1)).toEqual([]); // no REMOVED, no UPDATED: only renewals
      const alive = await runCli([...s, "instances", "carts", "-o", "json"]);
      expect(JSON.parse(alive.stdout).instances[0]).toMatchObject({ instanceId: "carts-1", tags: ["beta"] });
      reg.kill("SIGINT");
      expect(await exited(reg)).toBe(0);
      expect(regOut.lines.at(-1)).toBe("deregistered default/carts/carts-1 (SIGINT)");
      const removed = JSON.parse((await events.waitFor((l) => l.includes('"type":"REMOVED"'))).line);
      expect(removed).toMatchObject({ service: "carts", instanceId: "carts-1", reason: "DEREGISTERED" });
    } finally {
      reg.kill("SIGKILL");
      watch.kill("SIGINT");
      expect(await exited(watch)).toBe(0);
    }
  });

  it("watch, piped: one JSON object per change, ADDED then REMOVED within 1.5 s of the registered child's SIGKILL", async () => {
    const watch = spawnCli([...s, "watch", "crashy"]);
    const events = new Lines(watch);
    const reg = spawnCli([...s, "register", "crashy", "--id", "crashy-1", "--host", "10.0.3.1", "--port", "7001"]);
    try {
      // printed once the first beat was answered: the instance is bound to the heartbeat stream
      await new Lines(reg).waitFor((l) => l.startsWith("registered default/crashy/crashy-1"));
      const added = JSON.parse((await events.waitFor((l) => l.includes('"type":"ADDED"'))).line);
      expect(added).toMatchObject({ type: "ADDED", service: "crashy", instanceId: "crashy-1", instance: { host: "10.0.3.1", port: 7001 } });
      const t0 = performance.now();
      reg.kill("SIGKILL");
      const removed = JSON.parse((await events.waitFor((l) => l.includes('"type":"REMOVED"'), 5_000)).line);
      const took = performance.now() - t0;
      expect(removed).toMatchObject({ type: "REMOVED", instanceId: "crashy-1", reason: "STREAM_CLOSED" });
      expect(BigInt(removed.revision)).toBeGreaterThan(BigInt(added.revision));
      expect(took).toBeLessThan(1_500); // the grace (1 s) and the crash's detection
    } finally {
      reg.kill("SIGKILL");
      await exited(reg);
      watch.kill("SIGTERM");
      expect(await exited(watch)).toBe(0);
    }
  });

  it("drain: Discover stops choosing the instance and its owner's beats do not revert it; undrain restores what the beats report", async () => {
    const discover = () => postJson(server.url, "Discover", { service: "shop" });
    const watch = spawnCli([...s, "watch", "shop"]);
    const events = new Lines(watch);
    const reg = spawnCli([...s, "register", "shop", "--id", "shop-1", "--host", "10.0.5.1", "--port", "7002", "--ttl", "1s"]);
    try {
      await new Lines(reg).waitFor((l) => l.startsWith("registered default/shop/shop-1"));
      await events.waitFor((l) => l.includes('"type":"ADDED"'));
      expect((await discover()).json).toMatchObject({ instance: { instanceId: "shop-1", status: "SERVING_STATUS_SERVING" } });

      const drained = await runCli([...s, "drain", "shop", "shop-1"]);
      expect(drained).toMatchObject({ code: 0, stderr: "" });
      expect(drained.stdout).toMatch(/^drained default\/shop\/shop-1: status DRAINING at revision \d+\n$/);
      const updated = JSON.parse((await events.waitFor((l) => l.includes('"type":"UPDATED"'))).line);
      expect(updated).toMatchObject({ instanceId: "shop-1", instance: { status: "SERVING_STATUS_DRAINING", operatorStatus: "OPERATOR_STATUS_DRAINING" } });
      // Discover chooses SERVING instances only: none is left
      const none = await discover();
      expect(none.status).toBe(404);
      expect(none.json.message).toContain("no SERVING instance");
      // the owner keeps beating (SERVING) past two of its 1 s leases: the override stays, and no event comes
      const seen = events.lines.length;
      await new Promise((r) => setTimeout(r, 2_200));
      expect(events.lines.slice(seen)).toEqual([]);
      expect((await discover()).status).toBe(404);
      const table = await runCli([...s, "instances", "shop"]);
      // nothing of shop is SERVING: instances still lists it, its lease renewed by the beats (1 s TTL)
      expect(table.stdout.split("\n")[1]).toMatch(/^shop-1\s+10\.0\.5\.1:7002\s.*\sDRAINING \(operator\)\s+\d+s\s+-\s+[01]\.\ds$/);
      expect((await runCli([...s, "services"])).stdout).toMatch(/\nshop\s+1\s+0\s+1\s+0\n/);

      const undrained = await runCli([...s, "undrain", "shop", "shop-1", "-o", "json"]);
      expect(undrained.code).toBe(0);
      expect(JSON.parse(undrained.stdout)).toMatchObject({ instance: { instanceId: "shop-1", status: "SERVING_STATUS_SERVING" } });
      expect(JSON.parse(undrained.stdout).instance.operatorStatus).toBeUndefined(); // the zero value: no override
      expect((await discover()).json).toMatchObject({ instance: { instanceId: "shop-1", status: "SERVING_STATUS_SERVING" } });
      await events.waitFor((l) => l.includes('"type":"UPDATED"') && l.includes("SERVING_STATUS_SERVING"));

      const disabled = await runCli([...s, "drain", "shop", "shop-1", "--disable"]);
      expect(disabled.stdout).toMatch(/^disabled default\/shop\/shop-1: status NOT_SERVING at revision \d+\n$/);
      expect((await discover()).status).toBe(404);
      expect((await runCli([...s, "undrain", "shop", "shop-1"])).code).toBe(0);
      const missing = await runCli([...s, "drain", "shop", "shop-9"]);
      expect(missing).toMatchObject({ code: 3, stderr: "maxine: NotFound: key: instance shop-9 of service default/shop is not registered\n" });
    } finally {
      reg.kill("SIGINT");
      await exited(reg);
      watch.kill("SIGINT");
      expect(await exited(watch)).toBe(0);
    }
  });

  it("deregister removes at once; a second time is exit 3 with the server's message", async () => {
    await postJson(server.url, "Register", { instance: { service: "temp", instanceId: "temp-1", host: "10.0.4.1", port: 1 } });
    const ok = await runCli([...s, "deregister", "temp", "temp-1"]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^deregistered default\/temp\/temp-1 at revision \d+\n$/);
    const again = await runCli([...s, "deregister", "temp", "temp-1", "-o", "json"]);
    expect(again).toMatchObject({ code: 3, stdout: "" });
    expect(again.stderr).toBe("maxine: NotFound: key: instance temp-1 of service default/temp is not registered\n");
  });
});
