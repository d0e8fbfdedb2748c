import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ConfigService, type ConfigEntry } from "../../sdks/typescript/src/gen/maxine/config/v1/config_pb.js";
import { diffLines } from "../../sdks/typescript/src/line-diff.js";
import type { Credentials } from "./api.js";
import { h, setText, uid } from "./dom.js";

/** ConfigClient is the generated client of maxine.config.v1.ConfigService, over gRPC-Web from the page. */
type ConfigClient = Client<typeof ConfigService>;

const text = (v: Uint8Array) => new TextDecoder().decode(v);
const when = (e: ConfigEntry) => (e.updatedAt === undefined ? "" : new Date(timestampMs(e.updatedAt)).toISOString().replace(/\.\d{3}Z$/, "Z"));

/**
 * ConfigPanel shows the chosen service's configuration, live: one
 * ConfigService Watch per chosen service keeps its keys (version, when, by
 * whom); choosing a key shows its value, its diff against the version before
 * it (History), and an editor whose Save is a compare-and-set on the version
 * shown (a key changed meanwhile is refused, and the panel says so). It
 * stays hidden for a caller without config_read on the service. Its calls
 * go over gRPC-Web, whose errors come with HTTP 200, so a refusal is shown
 * here and not logged by the browser as a failed load.
 */
export class ConfigPanel {
  readonly root: HTMLElement;
  private readonly client: ConfigClient;
  private readonly list = h("ul", { class: "config-keys", "aria-label": "Keys" });
  private readonly editor: HTMLTextAreaElement;
  private readonly keyInput: HTMLInputElement;
  private readonly version = h("span", { "data-field": "config-version" });
  private readonly diff = h("pre", { class: "config-diff", "data-field": "config-diff" });
  private readonly output = h("output", { class: "config-answer", "aria-live": "polite" });
  private readonly entries = new Map<string, ConfigEntry>();
  private namespace = "";
  private service = "";
  private chosen = "";
  /** shownVersion is the version the editor was loaded from: Save expects it (0: a new key). */
  private shownVersion = 0n;
  private stream: AbortController | undefined;

  constructor(credentials: Credentials, baseUrl: string = location.origin) {
    this.client = createClient(ConfigService, createGrpcWebTransport({ baseUrl, useBinaryFormat: true, interceptors: [credentials.interceptor] }));
    const keyId = uid("config-key");
    const valueId = uid("config-value");
    this.keyInput = h("input", { id: keyId, name: "key", autocomplete: "off", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._\\/\\-]{0,255}" });
    this.editor = h("textarea", { id: valueId, name: "value", rows: 6, spellcheck: false });
    const save = h("button", { type: "submit" }, "Save");
    const form = h(
      "form",
      { class: "config-edit" },
      h("div", { class: "field" }, h("label", { for: keyId }, "Key"), this.keyInput),
      h("div", { class: "field" }, h("label", { for: valueId }, "Value"), this.editor),
      h("p", { class: "muted" }, "Editing version ", this.version, " (Save writes only if it is still the latest)."),
      h("div", { class: "buttons" }, save),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (this.keyInput.reportValidity()) void this.save();
    });
    this.keyInput.addEventListener("change", () => this.choose(this.keyInput.value.trim()));
    this.root = h(
      "section",
      { class: "panel config", "aria-labelledby": "config-title", hidden: true, "data-allowed": "no" },
      h("h2", { id: "config-title" }, "Configuration"),
      this.list,
      form,
      this.output,
      h("h3", {}, "Change"),
      this.diff,
    );
  }

  /** show follows service of namespace (none: "") with a Watch of its configuration. */
  show(namespace: string, service: string): void {
    if (namespace === this.namespace && service === this.service) return;
    this.namespace = namespace;
    this.service = service;
    this.restart();
  }

  /** recheck opens the watch again (the token changed). */
  recheck(): void {
    this.restart();
  }

  private restart(): void {
    this.stream?.abort();
    this.stream = undefined;
    this.entries.clear();
    this.chosen = "";
    this.keyInput.value = "";
    this.editor.value = "";
    this.shownVersion = 0n;
    setText(this.version, "none");
    setText(this.diff, "");
    setText(this.output, "");
    this.render();
    this.root.hidden = true;
    this.root.dataset.allowed = this.service === "" ? "no" : "pending";
    if (this.service === "") return;
    const abort = new AbortController();
    this.stream = abort;
    void this.follow(abort.signal);
  }

  /** follow applies the service's configuration watch: a snapshot, then each change, until aborted or refused. */
  private async follow(signal: AbortSignal): Promise<void> {
    try {
      let snapshot: ConfigEntry[] = [];
      for await (const m of this.client.watch({ namespace: this.namespace, services: [this.service] }, { signal })) {
        if (m.message.case === "snapshot") snapshot.push(...m.message.value.entries);
        else if (m.message.case === "snapshotEnd") {
          this.entries.clear();
          for (const e of snapshot) this.entries.set(e.key, e);
          snapshot = [];
          this.root.hidden = false;
          this.root.dataset.allowed = "yes";
          this.render();
        } else if (m.message.case === "event" && m.message.value.entry !== undefined) {
          const e = m.message.value.entry;
          if (e.deleted) this.entries.delete(e.key);
          else this.entries.set(e.key, e);
          this.render();
          if (e.key === this.chosen) void this.loadDiff();
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      const code = ConnectError.from(err).code;
      if (code === Code.PermissionDenied || code === Code.Unauthenticated) {
        this.root.hidden = true;
        this.root.dataset.allowed = "no";
        return;
      }
      setText(this.output, `watch: ${ConnectError.from(err).message}`);
    }
  }

  private render(): void {
    const keys = [...this.entries.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const items = keys.map((e) => {
      const b = h("button", { type: "button", "data-key": e.key, "aria-pressed": e.key === this.chosen ? "true" : "false" }, `${e.key} · v${e.version} · ${when(e)} · ${e.principal}`);
      b.addEventListener("click", () => this.choose(e.key));
      return h("li", {}, b);
    });
    this.list.replaceChildren(...(items.length > 0 ? items : [h("li", { class: "muted" }, "no keys")]));
  }

  /** choose loads a key into the editor (its latest version) and shows its last change. */
  private choose(key: string): void {
    this.chosen = key;
    this.keyInput.value = key;
    const e = this.entries.get(key);
    this.shownVersion = e?.version ?? 0n;
    this.editor.value = e === undefined ? "" : text(e.value);
    setText(this.version, e === undefined ? "none (a new key)" : String(e.version));
    setText(this.output, "");
    this.render();
    void this.loadDiff();
  }

  private async loadDiff(): Promise<void> {
    const key = this.chosen;
    if (key === "" || !this.entries.has(key)) {
      setText(this.diff, "");
      return;
    }
    try {
      const res = await this.client.history({ namespace: this.namespace, service: this.service, key, limit: 2 });
      if (key !== this.chosen) return;
      const [after, before] = res.entries;
      const lines = (e: ConfigEntry | undefined) => (e === undefined || e.deleted ? [] : text(e.value).split("\n").filter((l, i, all) => l !== "" || i < all.length - 1));
      const head = `--- version ${before === undefined ? "(none)" : String(before.version)}\n+++ version ${after!.version}\n`;
      setText(this.diff, head + diffLines(lines(before), lines(after)).map(([op, l]) => `${op}${l}`).join("\n"));
    } catch (err) {
      setText(this.diff, ConnectError.from(err).message);
    }
  }

  private async save(): Promise<void> {
    const key = this.keyInput.value.trim();
    setText(this.output, "…");
    try {
      const expected = key === this.chosen ? this.shownVersion : (this.entries.get(key)?.version ?? 0n);
      const res = await this.client.put({ namespace: this.namespace, service: this.service, key, value: new TextEncoder().encode(this.editor.value), expectedVersion: expected });
      this.chosen = key;
      this.shownVersion = res.entry!.version;
      setText(this.version, String(res.entry!.version));
      setText(this.output, `${key}: saved as version ${res.entry!.version}`);
    } catch (err) {
      const e = ConnectError.from(err);
      setText(this.output, e.code === Code.FailedPrecondition ? `not saved: the key changed meanwhile (${e.rawMessage}); choose it again to edit the latest` : e.message);
    }
  }
}
