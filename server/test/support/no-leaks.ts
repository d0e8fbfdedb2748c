// A vitest setup file (vitest.config.ts): every test file must leave the
// process as it found it. After the file's last hook it waits briefly for
// things to wind down, then fails the file, naming what is left, if:
// - there are more sockets, servers, pipes or child processes than before
//   its first test (counted by kind: vitest itself opens none during a file);
// - a timer created while the file ran is still pending and keeps the
//   process alive (tracked one by one with async_hooks, with the stack that
//   created it; vitest's own hook timers and unref'd timers do not count).
import { createHook } from "node:async_hooks";
import { afterAll, beforeAll } from "vitest";

const SETTLE_MS = 3000;
const ROOT = new URL("../../../", import.meta.url).pathname;
const HANDLE_KINDS = new Set(["TCPSocketWrap", "TCPServerWrap", "PipeWrap", "PipeServerWrap", "ProcessWrap", "Http2Session", "UDPWrap"]);

interface TrackedTimer {
  readonly resource: { hasRef?: () => boolean };
  readonly stack: string;
}

const timers = new Map<number, TrackedTimer>();
const hook = createHook({
  init(asyncId, type, _trigger, resource) {
    if (type !== "Timeout") return;
    const stack = new Error().stack ?? "";
    if (/[\\/]node_modules[\\/](vitest|@vitest)[\\/]/.test(stack) && !/\.test\.ts/.test(stack)) return;
    timers.set(asyncId, { resource: resource as TrackedTimer["resource"], stack });
  },
  destroy(asyncId) {
    timers.delete(asyncId);
  },
});

function handleCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    if (HANDLE_KINDS.has(kind)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts;
}

let baseline = new Map<string, number>();

function leftovers(): string[] {
  const out: string[] = [];
  for (const [kind, n] of handleCounts()) {
    const was = baseline.get(kind) ?? 0;
    if (n > was) out.push(`${n - was} × ${kind}`);
  }
  for (const t of timers.values()) {
    if (t.resource.hasRef?.() === false) continue;
    const origin = t.stack.split("\n").find((l) => l.includes(ROOT) && !l.includes("node_modules") && !l.includes("no-leaks.ts")) ?? t.stack.split("\n")[2];
    out.push(`a pending timer created ${origin?.trim()}`);
  }
  return out;
}

beforeAll(() => {
  baseline = handleCounts();
  hook.enable();
});

afterAll(async () => {
  const deadline = Date.now() + SETTLE_MS;
  let left = leftovers();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setImmediate(resolve));
    hook.disable(); // this poll's own timer is not a leftover
    await new Promise((resolve) => setTimeout(resolve, 20));
    hook.enable();
    left = leftovers();
  }
  hook.disable();
  timers.clear();
  if (left.length > 0) {
    throw new Error(`the test file left resources behind ${SETTLE_MS} ms after its last test:\n  ${left.join("\n  ")}`);
  }
});
