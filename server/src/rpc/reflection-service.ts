import { create, createRegistry, fromBinary, toBinary, type DescFile, type DescMessage, type DescService, type Message, type MessageInitShape, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "@maxine/sdk/gen/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ServerReflectionV1alpha } from "@maxine/sdk/gen/grpc/reflection/v1alpha/reflection_pb";
import type { CallContext, Outgoing } from "./context.js";
import { methodInfo, type BidiCall, type Service } from "./service.js";
import type { StreamOutput } from "./stream-output.js";

/**
 * reflectionServices are grpc.reflection.v1.ServerReflection and its
 * predecessor v1alpha (still what many tools ask first), mounted on the
 * pipeline like every other service. They describe the services given plus
 * themselves: the list of service names, and each file (by name, or by a
 * symbol it defines) as a serialized FileDescriptorProto followed by every
 * file it imports, as grpcurl, buf curl --reflect and Postman expect. The
 * descriptors are the ones embedded in the generated code, so reflection
 * always describes exactly what the server decodes.
 */
export function reflectionServices(served: readonly DescService[]): Service[] {
  const index = new DescriptorIndex([...served, ServerReflectionV1, ServerReflectionV1alpha]);
  return [reflectionService(ServerReflectionV1, index), reflectionService(ServerReflectionV1alpha, index)];
}

/** DescriptorIndex answers reflection requests from the files of the served services and their imports. */
class DescriptorIndex {
  readonly services: readonly string[];
  private readonly files = new Map<string, DescFile>();
  private readonly types: Registry;
  private readonly encoded = new Map<DescFile, Uint8Array>();

  constructor(services: readonly DescService[]) {
    this.services = [...new Set(services.map((s) => s.typeName))].sort();
    const add = (f: DescFile): void => {
      if (this.files.has(f.proto.name)) return;
      this.files.set(f.proto.name, f);
      f.dependencies.forEach(add);
    };
    for (const s of services) add(s.file);
    this.types = createRegistry(...this.files.values());
  }

  /** answer is the response to one request (errors are answers too: the stream goes on). */
  answer(req: ServerReflectionRequest): ServerReflectionResponse {
    const r = req.messageRequest;
    const reply = (messageResponse: MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"]): ServerReflectionResponse =>
      create(ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse });
    const notFound = (what: string): ServerReflectionResponse =>
      reply({ case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } });
    const files = (f: DescFile | undefined, what: string): ServerReflectionResponse =>
      f === undefined ? notFound(what) : reply({ case: "fileDescriptorResponse", value: { fileDescriptorProto: this.withImports(f) } });
    switch (r.case) {
      case "listServices":
        return reply({ case: "listServicesResponse", value: { service: this.services.map((name) => ({ name })) } });
      case "fileByFilename":
        return files(this.files.get(r.value), `file ${JSON.stringify(r.value)}`);
      case "fileContainingSymbol":
        return files(this.fileOfSymbol(r.value), `symbol ${JSON.stringify(r.value)}`);
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = r.value;
        return files(this.extensionsOf(containingType).find((e) => e.number === extensionNumber)?.file, `extension ${extensionNumber} of ${containingType}`);
      }
      case "allExtensionNumbersOfType": {
        if (this.types.getMessage(r.value) === undefined) return notFound(`message type ${JSON.stringify(r.value)}`);
        const extensionNumber = this.extensionsOf(r.value).map((e) => e.number);
        return reply({ case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber } });
      }
      default:
        return reply({ case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "message_request: must be set" } });
    }
  }

  /** fileOfSymbol finds the file defining a type, service, method, field or enum value by its full name. */
  private fileOfSymbol(symbol: string): DescFile | undefined {
    const d = this.types.get(symbol);
    if (d !== undefined) return d.file;
    const dot = symbol.lastIndexOf(".");
    if (dot < 0) return undefined;
    const parent = this.types.get(symbol.slice(0, dot));
    const member = symbol.slice(dot + 1);
    switch (parent?.kind) {
      case "service":
        return parent.methods.some((m) => m.name === member) ? parent.file : undefined;
      case "message":
        return parent.fields.some((f) => f.name === member) || parent.oneofs.some((o) => o.name === member) ? parent.file : undefined;
      case "enum":
        return parent.values.some((v) => v.name === member) ? parent.file : undefined;
      default:
        return undefined;
    }
  }

  private extensionsOf(typeName: string) {
    return [...this.types].flatMap((d) => (d.kind === "extension" && d.extendee.typeName === typeName ? [d] : []));
  }

  /** withImports is file's FileDescriptorProto then those of everything it imports, directly or not, each once. */
  private withImports(file: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const add = (f: DescFile): void => {
      if (seen.has(f)) return;
      seen.add(f);
      let bytes = this.encoded.get(f);
      if (bytes === undefined) this.encoded.set(f, (bytes = toBinary(FileDescriptorProtoSchema, f.proto)));
      out.push(bytes);
      f.dependencies.forEach(add);
    };
    add(file);
    return out;
  }
}

/**
 * reflectionService serves one version of ServerReflection. v1 and v1alpha
 * have the same messages under two package names (identical on the wire),
 * so v1alpha requests are read as v1 and answers written back as v1alpha.
 */
function reflectionService(desc: typeof ServerReflectionV1 | typeof ServerReflectionV1alpha, index: DescriptorIndex): Service {
  const info = methodInfo(desc, "ServerReflectionInfo");
  const v1 = desc.typeName === ServerReflectionV1.typeName;
  const toV1 = (m: Message): ServerReflectionRequest => (v1 ? (m as ServerReflectionRequest) : fromBinary(ServerReflectionRequestSchema, toBinary(info.input, m)));
  const answerOf = (res: ServerReflectionResponse): Outgoing => {
    let bytes: Uint8Array | undefined;
    const binary = (): Uint8Array => (bytes ??= toBinary(ServerReflectionResponseSchema, res));
    return { bytes: binary, message: () => (v1 ? res : fromBinary(info.output as DescMessage, binary())) };
  };
  return {
    desc,
    methods: [
      {
        kind: "bidi_streaming",
        info,
        open: (ctx, out) => new ReflectionCall(ctx, out, (req) => answerOf(index.answer(toV1(req as Message)))),
      },
    ],
  };
}

/** ReflectionCall is one ServerReflectionInfo stream: each request answered in order; a client that does not read is not read either. */
class ReflectionCall implements BidiCall {
  private ended = false;

  constructor(
    private readonly ctx: CallContext,
    private readonly out: StreamOutput,
    private readonly answer: (req: unknown) => Outgoing,
  ) {
    ctx.signal.onAbort(this);
  }

  callAborted(reason: unknown): void {
    this.end(reason);
  }

  receive(req: unknown): void {
    if (this.ended) return;
    try {
      this.out.push(this.answer(req));
    } catch (err) {
      this.end(err); // an answer larger than MAXINE_MAX_RESPONSE_BYTES
      return;
    }
    if (!this.out.flush()) {
      this.out.pauseInput();
      this.out.whenWritable(() => this.out.resumeInput());
    }
  }

  inputEnded(): void {
    this.end();
  }

  fail(err: unknown): void {
    this.end(err);
  }

  private end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.signal.offAbort(this);
    this.out.close(err);
  }
}
