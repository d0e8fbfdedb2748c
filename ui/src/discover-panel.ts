import { ConnectError } from "@connectrpc/connect";
import { Strategy } from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";
import type { RegistryClient } from "./api.js";
import { h, uid } from "./dom.js";
import { statusName } from "./namespace-view.js";

const STRATEGIES: ReadonlyArray<readonly [Strategy, string]> = [
  [Strategy.ROUND_ROBIN, "round robin"],
  [Strategy.RANDOM, "random"],
  [Strategy.WEIGHTED, "weighted"],
  [Strategy.LEAST_LOADED, "least loaded"],
  [Strategy.CONSISTENT_HASH, "consistent hash"],
  [Strategy.RENDEZVOUS, "rendezvous"],
];

/**
 * DiscoverPanel sends one Discover with what the person chose (service,
 * strategy, hash key, preferred zone, filter) and shows the answer as the
 * RPC gives it: the chosen instance and the revision it was read at, or
 * the error's code and message.
 */
export class DiscoverPanel {
  readonly root: HTMLFormElement;
  readonly service: HTMLInputElement;
  private readonly output: HTMLOutputElement;

  constructor(
    private readonly client: RegistryClient,
    private readonly namespace: () => string,
  ) {
    const field = (label: string, input: HTMLInputElement | HTMLSelectElement): HTMLElement => {
      input.id = uid("discover");
      return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
    };
    this.service = h("input", { name: "service", required: true, autocomplete: "off" });
    const strategy = h("select", { name: "strategy" }, ...STRATEGIES.map(([v, label]) => h("option", { value: v }, label)));
    const hashKey = h("input", { name: "hashKey", autocomplete: "off", placeholder: "for consistent hash, rendezvous" });
    const preferredZone = h("input", { name: "preferredZone", autocomplete: "off" });
    const tags = h("input", { name: "tags", autocomplete: "off", placeholder: "tag1, tag2" });
    const version = h("input", { name: "version", autocomplete: "off" });
    const zone = h("input", { name: "zone", autocomplete: "off" });
    const metadata = h("input", { name: "metadata", autocomplete: "off", placeholder: "key=value, key=value" });
    this.output = h("output", { class: "discover-answer", "aria-live": "polite" });
    this.root = h(
      "form",
      { class: "discover", "aria-label": "Try Discover" },
      field("Service", this.service),
      field("Strategy", strategy),
      field("Hash key", hashKey),
      field("Preferred zone", preferredZone),
      field("Filter: tags", tags),
      field("Filter: version", version),
      field("Filter: zone", zone),
      field("Filter: metadata", metadata),
      h("button", { type: "submit" }, "Discover"),
      this.output,
    );
    this.root.addEventListener("submit", (e) => {
      e.preventDefault();
      const md: Record<string, string> = {};
      for (const pair of metadata.value.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
        const eq = pair.indexOf("=");
        if (eq <= 0) {
          this.output.textContent = `metadata: write key=value pairs separated by commas, got ${JSON.stringify(pair)}`;
          return;
        }
        md[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
      }
      void this.discover({
        namespace: this.namespace(),
        service: this.service.value.trim(),
        strategy: Number(strategy.value) as Strategy,
        hashKey: hashKey.value,
        preferredZone: preferredZone.value.trim(),
        filter: {
          tags: tags.value.split(",").map((s) => s.trim()).filter((s) => s !== ""),
          version: version.value.trim(),
          zone: zone.value.trim(),
          metadata: md,
        },
      });
    });
  }

  private async discover(req: Parameters<RegistryClient["discover"]>[0]): Promise<void> {
    this.output.textContent = "…";
    try {
      const res = await this.client.discover(req);
      const i = res.instance;
      this.output.textContent =
        i === undefined
          ? `no SERVING instance (revision ${res.revision})`
          : `${i.instanceId} at ${i.host}:${i.port}${i.zone !== "" ? `, zone ${i.zone}` : ""}, ${statusName(i.status)} (revision ${res.revision})`;
      this.output.dataset.instance = i?.instanceId ?? "";
    } catch (err) {
      this.output.textContent = ConnectError.from(err).message;
      this.output.dataset.instance = "";
    }
  }
}
