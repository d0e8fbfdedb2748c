import { existsSync } from "node:fs";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMaxineClient, type MaxineClient, type MaxineClientOptions } from "../../src/client.js";
import { MAIN, startServerProcess, type ServerProcess } from "../../../../server/test/support/server-process.js";

/** SDK_DIST is the built SDK that child-process fixtures import. */
export const SDK_DIST = new URL("../../dist/index.js", import.meta.url);

/** requireBuilt fails early, with the fix, when the server or the SDK was not built. */
export function requireBuilt(): void {
  for (const file of [MAIN, SDK_DIST.pathname]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  }
}

/** TEST_SERVER_ENV are the settings the SDK's end-to-end tests run the server with. */
export const TEST_SERVER_ENV: Record<string, string> = {
  MAXINE_GRACE: "1s",
  MAXINE_LEASE_TTL_MIN: "100ms",
  MAXINE_SHUTDOWN_GRACE: "300ms",
  // server-process waits for the "maxine listening" info line
  MAXINE_LOG_LEVEL: "info",
};

/** startTestServer builds and starts a server child process with TEST_SERVER_ENV plus env. */
export async function startTestServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  requireBuilt();
  return startServerProcess({ ...TEST_SERVER_ENV, ...env });
}

/** OwnedClient is a client on its own HTTP/2 connection, which a test can drop or close. */
export interface OwnedClient {
  readonly client: MaxineClient;
  readonly connection: Http2SessionManager;
}

/** ownedClient makes a client whose connection the test owns (abort() drops it). */
export function ownedClient(baseUrl: string, opts: Partial<MaxineClientOptions> = {}): OwnedClient {
  const connection = new Http2SessionManager(baseUrl);
  return { client: createMaxineClient({ baseUrl, sessionManager: connection, ...opts }), connection };
}
