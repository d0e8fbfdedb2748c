import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type Message } from "@bufbuild/protobuf";
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

/** jsonCodec is the protobuf JSON mapping; unknown fields are ignored, an empty body is the empty message. */
export const jsonCodec: Codec = {
  name: "json",
  decode(desc, bytes) {
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8");
    try {
      return fromJsonString(desc, text.length === 0 ? "{}" : text, { ignoreUnknownFields: true });
    } catch (err) {
      // protobuf-es names the message or field already ("cannot decode field x.Y.z from JSON: ...").
      throw new ConnectError(`request: ${(err as Error).message}`, Code.InvalidArgument);
    }
  },
  encode(desc, answer) {
    const json = answer.json?.() ?? toJsonString(desc, answer.message());
    return typeof json === "string" ? Buffer.from(json) : json;
  },
  frame(desc, answer) {
    return envelope(this.encode(desc, answer));
  },
};
