import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../../server/test/support/in-process.js";
import { startServerProcess, type ServerProcess } from "../../server/test/support/server-process.js";
import { BIN } from "./support/cli.js";

// What a person sees in a terminal: `maxine watch` in a real pseudo-terminal
// (tmux, installed by scripts/ensure-test-tools.sh), read back from the
// screen with capture-pane. The table is redrawn in place (the screen holds
// one table, not a log), the status line shows the revision and events/s,
// statuses are colored, NO_COLOR turns colors off, and Ctrl-C ends it with
// the shell's screen restored.

const exec = promisify(execFile);
const SOCKET = `maxine-test-${process.pid}`;

function tmuxPath(): string {
  const r = spawnSync("sh", ["-c", "command -v tmux"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error("tmux is missing: run `bash scripts/ensure-test-tools.sh` (npm test runs it first)");
  return r.stdout.trim();
}

const tmux = async (...args: string[]): Promise<string> => (await exec(tmuxPath(), ["-L", SOCKET, ...args], { timeout: 5_000 })).stdout;

/** screen is what the pane shows now (with -e, its color escapes too). */
const screen = (name: string, escapes = false): Promise<string> => tmux("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", name);

async function until(name: string, pred: (text: string) => boolean, what: string, escapes = false): Promise<string> {
  const deadline = Date.now() + 10_000;
  let text = "";
  while (Date.now() < deadline) {
    text = await screen(name, escapes);
    if (pred(text)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the terminal never showed ${what}; it shows:\n${text}`);
}

let server: ServerProcess;

beforeAll(async () => {
  tmuxPath();
  server = await startServerProcess();
  await postJson(server.url, "Register", { instance: { service: "web", instanceId: "web-1", host: "10.0.5.1", port: 80, zone: "eu-1a" }, leaseTtl: "600s" });
});
afterAll(async () => {
  await tmux("kill-server").catch(() => {}); // this file's own tmux server (its socket is named after this process)
  await server?.stop();
});

async function openWatch(name: string, env: string[]): Promise<void> {
  const cmd = `${process.execPath} ${BIN} --server 127.0.0.1:${server.port} watch web; echo "exit=$?"; sleep 30`;
  await tmux("new-session", "-d", "-s", name, "-x", "150", "-y", "30", ...env.flatMap((e) => ["-e", e]), cmd);
}

describe("maxine watch in a terminal", () => {
  it("redraws one table in place with a status line, colored statuses, and ends on Ctrl-C", async () => {
    await openWatch("colors", ["TERM=xterm-256color"]);
    let text = await until("colors", (t) => t.includes("web-1") && /revision \d+ · 1 instances/.test(t), "web-1 and the status line");
    expect(text).toMatch(/^watching web · revision 1 · 1 instances · \d+ events\/s · live/m);
    expect(text).toMatch(/^SERVICE\s+ID\s+ADDRESS\s+ZONE\s+VERSION\s+TAGS\s+WEIGHT\s+STATUS\s+AGE/m);

    await postJson(server.url, "Register", { instance: { service: "web", instanceId: "web-2", host: "10.0.5.2", port: 80, status: "SERVING_STATUS_DRAINING" }, leaseTtl: "600s" });
    text = await until("colors", (t) => t.includes("web-2") && /revision 2 · 2 instances/.test(t), "web-2 at revision 2");
    // in place: one header and one status line on the screen, not a growing log
    expect(text.match(/^SERVICE\s+ID/gm)).toHaveLength(1);
    expect(text.match(/^watching web/gm)).toHaveLength(1);
    expect(text).toMatch(/web\s+web-1\s+10\.0\.5\.1:80\s+eu-1a\s+-\s+-\s+100\s+SERVING/);
    expect(text).toMatch(/web\s+web-2\s+10\.0\.5\.2:80\s+-\s+-\s+-\s+100\s+DRAINING/);
    const colored = await screen("colors", true);
    expect(colored).toMatch(/\x1b\[32mSERVING/); // green
    expect(colored).toMatch(/\x1b\[33mDRAINING/); // yellow

    await postJson(server.url, "Deregister", { key: { service: "web", instanceId: "web-2" } });
    text = await until("colors", (t) => !t.includes("web-2") && /revision 3 · 1 instances/.test(t), "web-2 gone at revision 3");

    await tmux("send-keys", "-t", "colors", "C-c");
    text = await until("colors", (t) => t.includes("exit="), "the shell after Ctrl-C");
    expect(text).toContain("exit=0");
    expect(text).not.toContain("SERVICE"); // the alternate screen is gone: the shell's screen is back
    await tmux("kill-session", "-t", "colors");
  });

  it("writes no colors with NO_COLOR set", async () => {
    await openWatch("plain", ["TERM=xterm-256color", "NO_COLOR=1"]);
    await until("plain", (t) => /revision \d+ · 1 instances/.test(t), "the table");
    const colored = await screen("plain", true);
    expect(colored).toContain("SERVING");
    expect(colored).not.toMatch(/\x1b\[3\dm/);
    await tmux("send-keys", "-t", "plain", "C-c");
    expect(await until("plain", (t) => t.includes("exit="), "the shell after Ctrl-C")).toContain("exit=0");
    await tmux("kill-session", "-t", "plain");
  });
});
