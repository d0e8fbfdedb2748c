import { createRegistry, fromBinary, fromJsonString, toBinary, toJsonString, type DescFile, type DescMessage, type Message, type Registry } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Outgoing } from "../rpc/context.js";
import { envelope } from "./envelope.js";

/**
 * Codec reads requests and writes answers in one of protobuf's two formats.
 * Every protocol takes either; the answers' prepared forms (Outgoing) spare
 * the binary codec most encoding.
 */
export interface Codec {
  readonly name: "proto" | "json";
  /** decode reads a request; undecodable input is INVALID_ARGUMENT naming the message type, for every protocol. */
  decode(desc: DescMessage, bytes: Uint8Array): Message;
  /** encode writes an answer's payload. */
  encode(desc: DescMessage, answer: Outgoing): Uint8Array;
  /** frame writes an answer as one enveloped message (flags 0). */
  frame(desc: DescMessage, answer: Outgoing): Uint8Array;
}

/** protoCodec is the protobuf binary format. */
export const protoCodec: Codec = {
  name: "proto",
  decode(desc, bytes) {
    try {
      return fromBinary(desc, bytes);
    } catch (err) {
      throw new ConnectError(`request: not a valid ${desc.typeName}: ${(err as Error).message}`, Code.InvalidArgument);
    }
  },
  encode(desc, answer) {
    if (answer.bytes !== undefined) return answer.bytes();
    if (answer.frame !== undefined) return answer.frame().subarray(5);
    return toBinary(desc, answer.message());
  },
  frame(desc, answer) {
    return answer.frame?.() ?? envelope(this.encode(desc, answer));
  },
};

const registries = new WeakMap<DescMessage, Registry>();

/**
 * registryOf is the types a message's JSON may name in a google.protobuf.Any:
 * those of its file and the files it imports (what protobuf-es's JSON needs
 * to read or write an Any). A memo keyed by the immutable descriptor.
 */
export function registryOf(desc: DescMessage): Registry {
  let r = registries.get(desc);
  if (r === undefined) registries.set(desc, (r = fileRegistry(desc.file)));
  return r;
}

/** fileRegistry holds the types of file and of every file it imports, directly or not. */
export function fileRegistry(file: DescFile): Registry {
  const files = new Set<DescFile>();
  const add = (f: DescFile): void => {
    if (files.has(f)) return;
    files.add(f);
    f.dependencies.forEach(add);
  };
  add(file);
  return createRegistry(...files);
}

/** jsonCodec is the protobuf JSON mapping; unknown fields are ignored, an empty body is the empty message. */
export const jsonCodec: Codec = {
  name: "json",
  decode(desc, bytes) {
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8");
    try {
      return fromJsonString(desc, text.length === 0 ? "{}" : text, { ignoreUnknownFields: true, registry: registryOf(desc) });
    } catch (err) {
      // protobuf-es names the message or field already ("cannot decode field x.Y.z from JSON: ...").
      throw new ConnectError(`request: ${(err as Error).message}`, Code.InvalidArgument);
    }
  },
  encode(desc, answer) {
    let json: string | Uint8Array;
    try {
      json = answer.json?.() ?? toJsonString(desc, answer.message(), { registry: registryOf(desc) });
    } catch (err) {
      // An answer JSON cannot express (an Any of an unknown type) is the server's fault.
      throw new ConnectError(`response: ${(err as Error).message}`, Code.Internal);
    }
    return typeof json === "string" ? Buffer.from(json) : json;
  },
  frame(desc, answer) {
    return envelope(this.encode(desc, answer));
  },
};
