import { describe, expect, it } from "vitest";
import { startServerProcess } from "./support/server-process.js";

// The server process ends on SIGTERM even when nothing reads its log any
// more (the process that read stdout died): a log write then fails with
// EPIPE, and the process must still drain and exit.

describe("server process shutdown", () => {
  it("exits 0 on SIGTERM after stdout's reader went away", async () => {
    const server = await startServerProcess();
    server.child.stdout!.destroy(); // our end of the pipe: the server's next write gets EPIPE
    const started = performance.now();
    const code = await Promise.race([
      server.stop(),
      new Promise<string>((resolve) => setTimeout(() => resolve("still running after 8 s"), 8000).unref()),
    ]);
    if (code === "still running after 8 s") await server.kill();
    expect(code).toBe(0);
    expect(performance.now() - started).toBeLessThan(8000);
  }, 15_000);
});
