import { create, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import type { CallContext } from "../../src/rpc/context.js";
import { outgoing } from "../../src/rpc/context.js";
import { methodInfo, type BidiCall, type Service } from "../../src/rpc/service.js";
import type { StreamOutput } from "../../src/rpc/stream-output.js";
import { RequestStream } from "../../src/transport/request-stream.js";
import {
  BidiStreamRequestSchema,
  BidiStreamResponseSchema,
  ClientStreamRequestSchema,
  ClientStreamResponseSchema,
  ConformancePayload_RequestInfoSchema,
  ConformancePayloadSchema,
  ConformanceService,
  IdempotentUnaryRequestSchema,
  IdempotentUnaryResponseSchema,
  ServerStreamRequestSchema,
  ServerStreamResponseSchema,
  UnaryRequestSchema,
  UnaryResponseSchema,
  type BidiStreamRequest,
  type ConformancePayload_RequestInfo,
  type Error as ErrorDef,
  type Header,
  type IdempotentUnaryRequest,
  type ServerStreamRequest,
  type UnaryRequest,
  type UnaryResponseDefinition,
} from "./gen/connectrpc/conformance/v1/service_pb.js";

// connectrpc.conformance.v1.ConformanceService as a table of handlers on
// Maxine's pipeline, test-only: it behaves as the suite's reference server
// (connectrpc.com/conformance internal/app/referenceserver/impl.go), so that
// the suite's reference client checks Maxine's framing of every protocol.
// Unimplemented is left out of the table on purpose: the framing must answer
// UNIMPLEMENTED itself.

/** conformanceService builds the test-only ConformanceService. */
export function conformanceService(): Service {
  const info = (name: string) => methodInfo(ConformanceService, name);
  return {
    desc: ConformanceService,
    methods: [
      {
        kind: "unary",
        info: info("Unary"),
        async handle(ctx, m) {
          const req = m as UnaryRequest;
          return outgoing(create(UnaryResponseSchema, { payload: await unary(ctx, req.responseDefinition, [pack(UnaryRequestSchema, req)]) }));
        },
      },
      {
        kind: "unary",
        info: info("IdempotentUnary"),
        async handle(ctx, m) {
          const req = m as IdempotentUnaryRequest;
          const payload = await unary(ctx, req.responseDefinition, [pack(IdempotentUnaryRequestSchema, req)]);
          return outgoing(create(IdempotentUnaryResponseSchema, { payload }));
        },
      },
      {
        kind: "client_streaming",
        info: info("ClientStream"),
        async handle(ctx, requests) {
          let def: UnaryResponseDefinition | undefined;
          const reqs: Any[] = [];
          let first = true;
          for await (const m of requests) {
            const req = m as MessageShape<typeof ClientStreamRequestSchema>;
            if (first) def = req.responseDefinition;
            first = false;
            reqs.push(pack(ClientStreamRequestSchema, req));
          }
          return outgoing(create(ClientStreamResponseSchema, { payload: await unary(ctx, def, reqs) }));
        },
      },
      {
        kind: "server_streaming",
        info: info("ServerStream"),
        run: serverStream,
      },
      {
        kind: "bidi_streaming",
        info: info("BidiStream"),
        deferHeaders: true,
        open: bidiStream,
      },
    ],
  };
}

function pack<D extends DescMessage>(desc: D, m: Message): Any {
  return anyPack(desc, m as MessageShape<D>);
}

/** unary answers as the reference's doUnary: the definition's error (request info in its details) or a payload echoing the request. */
async function unary(ctx: CallContext, def: UnaryResponseDefinition | undefined, reqs: Any[]) {
  const info = requestInfo(ctx, reqs);
  if (def !== undefined) {
    addHeaders(def.responseHeaders, ctx.responseHeader);
    addHeaders(def.responseTrailers, ctx.responseTrailer);
  }
  if (def?.response.case === "error") throw errorOf(def.response.value, info);
  const payload = create(ConformancePayloadSchema, { requestInfo: info });
  if (def?.response.case === "responseData") payload.data = def.response.value;
  await sleep(ctx, def?.responseDelayMs ?? 0);
  return payload;
}

async function serverStream(ctx: CallContext, m: Message, out: StreamOutput): Promise<void> {
  const req = m as ServerStreamRequest;
  const def = req.responseDefinition;
  if (def === undefined) return;
  addHeaders(def.responseHeaders, ctx.responseHeader);
  addHeaders(def.responseTrailers, ctx.responseTrailer);
  if (def.responseData.length > 0) out.sendHeader();
  let sent = 0;
  for (const data of def.responseData) {
    const payload = create(ConformancePayloadSchema, { data });
    if (sent === 0) payload.requestInfo = requestInfo(ctx, [pack(ServerStreamRequestSchema, req)]);
    await sleep(ctx, def.responseDelayMs);
    await send(ctx, out, create(ServerStreamResponseSchema, { payload }));
    sent++;
  }
  if (def.error !== undefined) throw errorOf(def.error, sent === 0 ? requestInfo(ctx, [pack(ServerStreamRequestSchema, req)]) : undefined);
}

/** bidiStream runs the reference's BidiStream loop over the messages the framing hands the call. */
function bidiStream(ctx: CallContext, out: StreamOutput): BidiCall {
  const requests = new RequestStream(
    () => out.pauseInput(),
    () => out.resumeInput(),
  );
  void (async () => {
    let def: BidiStreamRequest["responseDefinition"];
    let fullDuplex = false;
    let first = true;
    let sent = 0;
    let reqs: Any[] = [];
    for await (const m of requests) {
      const req = m as BidiStreamRequest;
      reqs.push(pack(BidiStreamRequestSchema, req));
      if (first) {
        first = false;
        def = req.responseDefinition;
        fullDuplex = req.fullDuplex;
        if (def !== undefined) {
          addHeaders(def.responseHeaders, ctx.responseHeader);
          addHeaders(def.responseTrailers, ctx.responseTrailer);
          if (fullDuplex && def.responseData.length > 0) out.sendHeader();
        }
      }
      if (!fullDuplex) continue;
      if (sent >= (def?.responseData.length ?? 0)) break;
      const payload = create(ConformancePayloadSchema, { data: def!.responseData[sent] });
      payload.requestInfo = sent === 0 ? requestInfo(ctx, reqs) : create(ConformancePayload_RequestInfoSchema, { requests: reqs });
      await sleep(ctx, def!.responseDelayMs);
      await send(ctx, out, create(BidiStreamResponseSchema, { payload }));
      sent++;
      reqs = [];
    }
    if (def === undefined) return;
    if (!fullDuplex && def.responseData.length > 0) out.sendHeader();
    for (; sent < def.responseData.length; sent++) {
      const payload = create(ConformancePayloadSchema, { data: def.responseData[sent] });
      if (sent === 0) payload.requestInfo = requestInfo(ctx, reqs);
      await sleep(ctx, def.responseDelayMs);
      await send(ctx, out, create(BidiStreamResponseSchema, { payload }));
    }
    if (def.error !== undefined) throw errorOf(def.error, sent === 0 ? requestInfo(ctx, reqs) : undefined);
  })().then(
    () => out.close(),
    (err: unknown) => out.close(err),
  );
  return {
    receive: (req) => requests.push(req as Message),
    inputEnded: () => requests.end(),
    fail: (err) => requests.end(err),
  };
}

/** send writes one answer and waits while the client does not read; it throws when the call must end. */
async function send(ctx: CallContext, out: StreamOutput, m: Message): Promise<void> {
  if (ctx.signal.aborted) throw ctx.signal.reason;
  out.push(outgoing(m));
  if (!out.flush()) await new Promise<void>((resolve) => out.whenWritable(resolve));
}

/** sleep waits ms (a response delay), or until the call must end, which it then throws. */
async function sleep(ctx: CallContext, ms: number): Promise<void> {
  if (ms > 0) {
    await new Promise<void>((resolve) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        ctx.signal.offAbort(onAbort);
        resolve();
      }, ms);
      ctx.signal.onAbort(onAbort);
    });
  }
  if (ctx.signal.aborted) throw ctx.signal.reason;
}

function addHeaders(from: readonly Header[], to: Headers): void {
  for (const h of from) for (const v of h.value) to.append(h.name, v);
}

/** requestInfo echoes what the server saw of the call: headers, timeout, the requests, and a GET's query. */
function requestInfo(ctx: CallContext, requests: Any[]): ConformancePayload_RequestInfo {
  const info = create(ConformancePayload_RequestInfoSchema, { requestHeaders: grouped(ctx.headers()), requests });
  if (ctx.timeoutMs !== undefined) info.timeoutMs = BigInt(Math.floor(ctx.timeoutMs));
  const query = ctx.url === undefined ? undefined : new URL(ctx.url, "http://localhost").searchParams;
  if (query !== undefined && query.size > 0) info.connectGetInfo = { $typeName: "connectrpc.conformance.v1.ConformancePayload.ConnectGetInfo", queryParams: grouped(query) };
  return info;
}

function grouped(entries: Iterable<[string, string]>): Header[] {
  const byName = new Map<string, string[]>();
  for (const [k, v] of entries) {
    const values = byName.get(k);
    if (values === undefined) byName.set(k, [v]);
    else values.push(v);
  }
  return [...byName].map(([name, value]) => ({ $typeName: "connectrpc.conformance.v1.Header", name, value }));
}

/** errorOf turns the definition's error into a ConnectError, with the request info as its last detail when given. */
function errorOf(def: ErrorDef, info: ConformancePayload_RequestInfo | undefined): ConnectError {
  const details = def.details.map((a) => ({ type: a.typeUrl.slice(a.typeUrl.lastIndexOf("/") + 1), value: a.value }));
  if (info !== undefined) details.push({ type: ConformancePayload_RequestInfoSchema.typeName, value: pack(ConformancePayload_RequestInfoSchema, info).value });
  const err = new ConnectError(def.message ?? "", def.code as number);
  err.details = details; // already encoded (google.protobuf.Any's type and bytes)
  return err;
}
