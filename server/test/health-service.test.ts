import { create, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus as Status, type HealthCheckResponse, type HealthListResponse } from "@maxine/sdk/gen/grpc/health/v1/health_pb";
import { describe, expect, it } from "vitest";
import { CallSignal, type CallContext, type Outgoing } from "../src/rpc/context.js";
import { healthService } from "../src/rpc/health-service.js";
import type { ServerStreamHandler, UnaryHandler } from "../src/rpc/service.js";
import { ServingState } from "../src/rpc/serving-state.js";
import type { StreamOutput } from "../src/rpc/stream-output.js";
import { MemoryStore } from "../src/store/memory-store.js";
import type { StoreHealth } from "../src/store/store.js";

// The health handlers in process, for what a client cannot reach over the
// network: Check while the server drains (its listener no longer accepts),
// a store that reports itself degraded, a Watch opened during the drain, and
// a Watch whose client does not read.

const REGISTRY = "maxine.registry.v1.RegistryService";

/** FlakyStore is the memory store with a health that the test sets (as the Redis store reports it). */
class FlakyStore extends MemoryStore {
  private h: StoreHealth = { status: "ok", detail: "reachable" };
  private readonly healthListeners = new Set<() => void>();
  health(): StoreHealth {
    return this.h;
  }
  subscribeHealth(fn: () => void): () => void {
    this.healthListeners.add(fn);
    return () => this.healthListeners.delete(fn);
  }
  set(status: StoreHealth["status"]): void {
    this.h = { status, detail: status };
    for (const fn of this.healthListeners) fn();
  }
}

/** Out is a StreamOutput that keeps what it is given; writable says whether flush reports the client reading. */
class Out implements StreamOutput {
  readonly sent: Status[] = [];
  writable = true;
  private waiting: Array<() => void> = [];
  sendHeader(): void {}
  push(a: Outgoing): boolean {
    this.sent.push((a.message() as HealthCheckResponse).status);
    return true;
  }
  flush(): boolean {
    return this.writable;
  }
  whenWritable(fn: () => void): void {
    this.waiting.push(fn);
  }
  drained(): void {
    this.writable = true;
    for (const fn of this.waiting.splice(0)) fn();
  }
  buffered(): number {
    return 0;
  }
  cut(): void {}
  close(): void {
    throw new Error("health's Watch is server-streaming: its handler's promise ends it, never close");
  }
  pauseInput(): void {}
  resumeInput(): void {}
}

function setup() {
  const drain = new AbortController();
  const store = new FlakyStore();
  const state = new ServingState(drain.signal, store);
  const svc = healthService(state);
  const m = (name: string) => svc.methods.find((x) => x.info.name === name)!;
  const ctx = () => ({ signal: new CallSignal() }) as unknown as CallContext;
  const req = (service: string): Message => create(HealthCheckRequestSchema, { service });
  const check = async (service: string) => ((await (m("Check") as UnaryHandler).handle(ctx(), req(service))).message() as HealthCheckResponse).status;
  const list = async () => ((await (m("List") as UnaryHandler).handle(ctx(), req(""))).message() as HealthListResponse).statuses;
  const watch = (service: string, out: Out) => {
    const c = ctx();
    const done = (m("Watch") as ServerStreamHandler).run(c, req(service), out);
    done.catch(() => {});
    return { done, ctx: c };
  };
  return { drain, store, state, check, list, watch };
}

describe("health handlers", () => {
  it("Check: NOT_SERVING for both names while draining; the registry NOT_SERVING while the store is degraded", async () => {
    const h = setup();
    expect([await h.check(""), await h.check(REGISTRY)]).toEqual([Status.SERVING, Status.SERVING]);
    h.store.set("degraded");
    expect([await h.check(""), await h.check(REGISTRY)]).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(h.state.status).toBe("degraded");
    const l = await h.list();
    expect(Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v.status]))).toEqual({ "": Status.SERVING, [REGISTRY]: Status.NOT_SERVING });
    h.store.set("ok");
    h.drain.abort();
    expect([await h.check(""), await h.check(REGISTRY)]).toEqual([Status.NOT_SERVING, Status.NOT_SERVING]);
    await expect(h.check("x")).rejects.toMatchObject({ code: Code.NotFound });
    h.state.close();
  });

  it("Watch opened during the drain: NOT_SERVING, then UNAVAILABLE at once", async () => {
    const h = setup();
    h.drain.abort();
    const out = new Out();
    const w = h.watch("", out);
    await expect(w.done).rejects.toMatchObject({ code: Code.Unavailable });
    expect(out.sent).toEqual([Status.NOT_SERVING]);
  });

  it("Watch: a client that does not read gets only the latest status when it reads again", async () => {
    const h = setup();
    const out = new Out();
    const w = h.watch(REGISTRY, out);
    expect(out.sent).toEqual([Status.SERVING]);
    out.writable = false;
    h.store.set("degraded");
    expect(out.sent).toEqual([Status.SERVING, Status.NOT_SERVING]); // sent, and the client stopped reading
    h.store.set("ok");
    h.store.set("degraded");
    h.store.set("ok");
    expect(out.sent).toHaveLength(2); // nothing piles up
    out.drained();
    expect(out.sent).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING]);
    w.ctx.signal.abort(new ConnectError("the client cancelled the call", Code.Canceled));
    await expect(w.done).rejects.toMatchObject({ code: Code.Canceled });
    h.store.set("degraded");
    expect(out.sent).toHaveLength(3); // unsubscribed
  });
});
