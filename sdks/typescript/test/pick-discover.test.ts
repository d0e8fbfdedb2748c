import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServingStatus, Strategy } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Scope } from "./support/scope.js";
import { ownedClient, startTestServer } from "./support/sdk-server.js";
import { waitFor } from "./support/wait.js";

// The SDK's local pick and the server's Discover must choose the same
// instance for the same key and the same instances: both use balancer.ts
// over SERVING instances in instance_id order.

let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await scope.close();
  await server?.stop();
});

describe("pick agrees with Discover", () => {
  it("for CONSISTENT_HASH and RENDEZVOUS, key by key", async () => {
    const { client } = scope.defer(ownedClient(server.url), (c) => c.connection.abort());
    // Registered out of order, with a non-SERVING one that neither may choose.
    const ids = ["node-7", "node-2", "node-9", "node-4", "node-1", "node-5"];
    for (const [n, id] of ids.entries()) {
      const status = id === "node-4" ? ServingStatus.NOT_SERVING : ServingStatus.SERVING;
      await client.register({ instance: { service: "hashing", instanceId: id, host: "127.0.0.1", port: 9000 + n, status } });
    }
    const watcher = scope.defer(new Watcher(client, { services: "hashing" }), (w) => w.close());
    await watcher.ready();
    await waitFor(() => watcher.instances("hashing").length === ids.length, "all instances in the watcher");
    for (const strategy of [Strategy.CONSISTENT_HASH, Strategy.RENDEZVOUS]) {
      const chosen = new Set<string>();
      for (let k = 0; k < 150; k++) {
        const hashKey = `session-${k * 7919}`;
        const d = await client.discover({ service: "hashing", strategy, hashKey });
        const local = watcher.pick(strategy, hashKey);
        expect(local?.instanceId, `${Strategy[strategy]} ${hashKey}`).toBe(d.instance!.instanceId);
        chosen.add(local!.instanceId);
      }
      expect(chosen.has("node-4")).toBe(false);
      expect(chosen.size).toBe(5); // every SERVING instance gets some keys
    }
  });
});
