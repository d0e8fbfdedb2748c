import { PassThrough } from "node:stream";
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { eachChunk } from "../src/transport/body.js";

// eachChunk reads a request body for the framings (transport/body.ts): the
// listeners of a unary call's body stay once it settled, and do nothing;
// a server stream's (held open for hours) are removed.

const events = ["data", "end", "error", "close"] as const;
const counts = (s: PassThrough) => events.map((e) => s.listenerCount(e));

describe("eachChunk", () => {
  it("hands every chunk over and resolves at the end; a late close or error after that does nothing", async () => {
    const body = new PassThrough();
    const got: string[] = [];
    const before = counts(body);
    const done = eachChunk(body, (c) => got.push(c.toString()));
    body.write("a");
    body.end("b");
    await done;
    expect(got.join("")).toBe("ab");
    expect(counts(body).map((n, i) => n - before[i]!)).toEqual([1, 1, 1, 1]); // kept: the call ends with its request
    body.emit("error", new Error("late"));
    body.emit("close");
    await new Promise((r) => setImmediate(r));
  });

  it("with release (a server stream) removes its listeners once the body ended", async () => {
    const body = new PassThrough();
    const before = counts(body);
    const done = eachChunk(body, () => {}, true);
    body.end("x");
    await done;
    expect(counts(body)).toEqual(before);
  });

  it("rejects with CANCELED when the request closes before its body ended, and with onChunk's error, discarding the rest", async () => {
    const closed = new PassThrough();
    const a = eachChunk(closed, () => {});
    closed.write("x");
    closed.destroy();
    await expect(a).rejects.toThrow(ConnectError);
    await expect(a).rejects.toThrow("the client closed the request before its body ended");

    const refused = new PassThrough();
    let calls = 0;
    const b = eachChunk(
      refused,
      () => {
        calls++;
        throw new Error("too large");
      },
      true,
    );
    refused.write("x");
    await expect(b).rejects.toThrow("too large");
    refused.write("y");
    refused.end("z");
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(1);
  });
});
