import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { OperatorStatus, RegistryService } from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";
import type { Credentials, RegistryClient } from "./api.js";
import { h, setText, uid } from "./dom.js";
import { statusName } from "./namespace-view.js";

/**
 * PROBE_ID names no instance (a valid id nobody registers): SetOperatorStatus
 * for it answers NOT_FOUND to a caller allowed to change the service's
 * instances (the server checks the permission before it looks the instance
 * up) and PERMISSION_DENIED (or UNAUTHENTICATED) to one who is not. The
 * probe clears an override (UNSPECIFIED), so even an instance of that name
 * would only lose a drain.
 */
export const PROBE_ID = "maxine-dashboard-permission-probe";

/**
 * ActionsPanel lets an operator drain, disable, undrain or deregister one
 * instance of the chosen service: SetOperatorStatus (admin only) and
 * Deregister (the owner or an admin). It shows only where the caller may:
 * when a service is chosen (or the token changes) it asks the server with
 * a probe (PROBE_ID) whether the caller is an admin of that service; for
 * anybody else it stays hidden. Its calls go over gRPC-Web, whose errors
 * come with HTTP 200, so a refused call is shown here and not also logged by
 * the browser as a failed load.
 */
export class ActionsPanel {
  readonly root: HTMLElement;
  private readonly client: RegistryClient;
  private readonly instance: HTMLInputElement;
  private readonly choices: HTMLDataListElement;
  private readonly output: HTMLOutputElement;
  private service = "";
  private namespace = "";
  /** asked counts the probes sent: an answer to an older one is dropped. */
  private asked = 0;

  constructor(credentials: Credentials, baseUrl: string = location.origin) {
    this.client = createClient(RegistryService, createGrpcWebTransport({ baseUrl, useBinaryFormat: true, interceptors: [credentials.interceptor] }));
    const inputId = uid("action-instance");
    const listId = uid("action-choices");
    this.choices = h("datalist", { id: listId });
    this.instance = h("input", { id: inputId, name: "instance", required: true, autocomplete: "off", list: listId, pattern: "[A-Za-z0-9._:\\-]{1,128}" });
    this.output = h("output", { class: "action-answer", "aria-live": "polite" });
    const button = (label: string, run: () => Promise<string>): HTMLButtonElement => {
      const b = h("button", { type: "button" }, label);
      b.addEventListener("click", () => {
        if (!this.instance.reportValidity()) return;
        void this.act(run);
      });
      return b;
    };
    const key = () => ({ namespace: this.namespace, service: this.service, instanceId: this.instance.value.trim() });
    const setStatus = (status: OperatorStatus) => async (): Promise<string> => {
      const res = await this.client.setOperatorStatus({ key: key(), status });
      return `${res.instance?.instanceId}: ${statusName(res.instance!.status)} (revision ${res.revision})`;
    };
    this.root = h(
      "section",
      { class: "panel actions", "aria-labelledby": "actions-title", hidden: true, "data-allowed": "no" },
      h("h2", { id: "actions-title" }, "Instance actions"),
      h("p", { class: "muted" }, "Shown because this caller may change the chosen service's instances."),
      h("div", { class: "field" }, h("label", { for: inputId }, "Instance id"), this.instance, this.choices),
      h(
        "div",
        { class: "buttons" },
        button("Drain", setStatus(OperatorStatus.DRAINING)),
        button("Disable", setStatus(OperatorStatus.DISABLED)),
        button("Undrain", setStatus(OperatorStatus.UNSPECIFIED)),
        button("Deregister", async () => {
          const res = await this.client.deregister({ key: key() });
          return `${key().instanceId}: deregistered (revision ${res.revision})`;
        }),
      ),
      this.output,
    );
  }

  /** show offers the actions for service of namespace (none: ""), once the server says the caller may. */
  show(namespace: string, service: string): void {
    if (namespace === this.namespace && service === this.service) return;
    this.namespace = namespace;
    this.service = service;
    this.instance.value = "";
    setText(this.output, "");
    void this.probe();
  }

  /** recheck asks again (the token changed). */
  recheck(): void {
    void this.probe();
  }

  /** offer lists the chosen service's instance ids as the input's suggestions. */
  offer(ids: readonly string[]): void {
    if (this.choices.childElementCount === ids.length && ids.every((id, i) => (this.choices.children[i] as HTMLOptionElement).value === id)) return;
    this.choices.replaceChildren(...ids.map((id) => h("option", { value: id })));
  }

  private async probe(): Promise<void> {
    const n = ++this.asked;
    this.root.hidden = true;
    // data-allowed says what the probe found (pending while it runs): what tests wait on
    this.root.dataset.allowed = this.service === "" ? "no" : "pending";
    if (this.service === "") return;
    let allowed = false;
    try {
      await this.client.setOperatorStatus({ key: { namespace: this.namespace, service: this.service, instanceId: PROBE_ID }, status: OperatorStatus.UNSPECIFIED });
      allowed = true; // an instance of that name existed: the caller may change it
    } catch (err) {
      allowed = ConnectError.from(err).code === Code.NotFound;
    }
    if (n !== this.asked) return;
    this.root.hidden = !allowed;
    this.root.dataset.allowed = allowed ? "yes" : "no";
  }

  private async act(run: () => Promise<string>): Promise<void> {
    setText(this.output, "…");
    try {
      setText(this.output, await run());
    } catch (err) {
      setText(this.output, ConnectError.from(err).message);
    }
  }
}
