import { defineConfig } from "vitest/config";

// One vitest run covers every TypeScript package. Integration tests start
// real servers on loopback port 0, so files run in parallel processes but
// each file's tests run in order.
export default defineConfig({
  test: {
    include: ["server/test/**/*.test.ts", "sdks/typescript/test/**/*.test.ts", "cli/test/**/*.test.ts", "ui/test/**/*.test.ts"],
    // fails a test file that leaves a socket, timer, server or child process behind
    setupFiles: ["server/test/support/no-leaks.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]],
  },
});
