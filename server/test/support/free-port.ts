import { once } from "node:events";
import { createServer } from "node:net";

/** freePortForTest asks the OS for a free loopback port and releases it (nothing listens there afterwards). */
export async function freePortForTest(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, "close");
  return port;
}
