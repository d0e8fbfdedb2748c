import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { RegistryService } from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";

/**
 * Credentials holds the token the person typed, in memory only (never in
 * storage, cookies or the URL): a reload forgets it. The interceptor sends
 * it as `authorization: Bearer` on every call.
 */
export class Credentials {
  private token = "";

  /** set replaces the token (empty: none). */
  set(token: string): void {
    this.token = token.trim();
  }

  /** interceptor adds the token to each call, when one is held. */
  readonly interceptor: Interceptor = (next) => (req) => {
    if (this.token !== "") req.header.set("authorization", `Bearer ${this.token}`);
    return next(req);
  };

}

/** RegistryClient is the generated client of maxine.registry.v1.RegistryService over Connect-Web. */
export type RegistryClient = Client<typeof RegistryService>;

/**
 * createRegistryClient calls the server that served the page (same
 * origin, so the server's CORS check passes it as its own), with the
 * Connect protocol in binary protobuf: WatchServices, ListServices and
 * Discover.
 */
export function createRegistryClient(credentials: Credentials, baseUrl: string = location.origin): RegistryClient {
  const transport = createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [credentials.interceptor] });
  return createClient(RegistryService, transport);
}
