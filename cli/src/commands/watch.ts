import { RemovalReason, Watcher, type WatchChange } from "@maxine/sdk";
import type { Connection, GlobalOptions } from "../connection.js";
import { CliError, ExitCode } from "../errors.js";
import { INSTANCE_HEADER, instanceJson, instanceRow, paint, tableLines, type Output } from "../output.js";

/** REDRAW_MS is the live view's shortest interval between two redraws (a burst of changes redraws once). */
const REDRAW_MS = 100;

/**
 * watch follows services (or the whole namespace) with the SDK's Watcher,
 * which resumes after a disconnect without missing a change. On a terminal
 * (and --output table, the default) it shows a table redrawn in place with
 * a status line (revision, events/s, stream state); otherwise it writes one
 * JSON object per change. It runs until SIGINT or SIGTERM (exit 0), or a
 * fatal error (exit 1).
 */
export async function watch(conn: Connection, g: GlobalOptions, out: Output, services: readonly string[]): Promise<number> {
  const live = out.tty && out.format === "table";
  const watcher = new Watcher(conn.registry, { namespace: g.namespace, services: [...services] });
  const ended = new Promise<number>((resolve) => {
    process.once("SIGINT", () => resolve(ExitCode.OK));
    process.once("SIGTERM", () => resolve(ExitCode.OK));
    watcher.on("close", () => resolve(ExitCode.ERROR));
  });
  let fatal: unknown;
  watcher.on("error", (err) => {
    fatal = err;
    if (!live) process.stderr.write(`maxine: watch: ${(err as Error).message} (resuming)\n`);
  });
  const view = live ? new LiveView(out, watcher, services, g.namespace) : undefined;
  watcher.on("change", (c) => (view !== undefined ? view.changed() : out.json(changeJson(c))));
  try {
    const code = await ended;
    if (code !== ExitCode.OK) throw new CliError(`watch ended: ${(fatal as Error | undefined)?.message ?? "the watcher closed"}`);
    return code;
  } finally {
    view?.close();
    await watcher.close();
  }
}

/** changeJson is one change as the JSON line written when not on a terminal. */
function changeJson(c: WatchChange): unknown {
  return {
    type: c.type.toUpperCase(),
    revision: String(c.revision),
    service: c.instance.service,
    instanceId: c.instance.instanceId,
    ...(c.type === "removed" ? { reason: RemovalReason[c.removalReason] } : {}),
    instance: instanceJson(c.instance),
  };
}

/** LiveView is the table redrawn in place on a terminal, on the alternate screen (the shell's screen comes back on exit). */
class LiveView {
  private readonly times: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly ticker: NodeJS.Timeout;
  private last = 0;

  constructor(
    private readonly out: Output,
    private readonly watcher: Watcher,
    private readonly services: readonly string[],
    private readonly namespace: string,
  ) {
    out.stream.write("\x1b[?1049h\x1b[?25l"); // alternate screen, cursor hidden
    watcher.on("state", () => this.schedule());
    this.ticker = setInterval(() => this.schedule(), 1000); // events/s decays, ages grow
    this.draw();
  }

  changed(): void {
    this.times.push(Date.now());
    this.schedule();
  }

  close(): void {
    clearInterval(this.ticker);
    clearTimeout(this.timer);
    this.out.stream.write("\x1b[?25h\x1b[?1049l");
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const wait = Math.max(0, this.last + REDRAW_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, wait);
  }

  private draw(): void {
    this.last = Date.now();
    while (this.times.length > 0 && this.times[0]! < this.last - 1000) this.times.shift();
    const instances = this.watcher.instances();
    const what = this.services.length > 0 ? this.services.join(", ") : `namespace ${this.namespace || "default"}`;
    const status = `watching ${what} · revision ${this.watcher.revision} · ${instances.length} instances · ${this.times.length} events/s · ${this.watcher.state}`;
    const rows = instances.map((i) => [i.service, ...instanceRow(this.out, i, this.last)]);
    const lines = [paint(status, this.out.color ? 7 : undefined), "", ...tableLines(["SERVICE", ...INSTANCE_HEADER], rows, this.out.color)];
    // home, each line cleared to its end, then everything below cleared: no flicker
    this.out.stream.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join("\n")}\n\x1b[J`);
  }
}
