import { Code, ConnectError } from "@connectrpc/connect";
import { ResetReason } from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";
import { ActionsPanel } from "./actions-panel.js";
import { ConfigPanel } from "./config-panel.js";
import { Credentials, createRegistryClient } from "./api.js";
import { h, setAttr, setText, uid } from "./dom.js";
import { DiscoverPanel } from "./discover-panel.js";
import { EventFeed } from "./event-feed.js";
import { InstanceTable } from "./instance-table.js";
import { AUTO_LIMIT, LiveFactsLoader } from "./live-facts.js";
import { LiveWatch, type LinkState } from "./live-watch.js";
import { NamespaceView } from "./namespace-view.js";
import { ServicesView, type ServiceLine } from "./services-view.js";

/** SUGGEST_MAX is the most instance ids the actions panel suggests (a service larger than that: type the id). */
const SUGGEST_MAX = 1000;

/** HEALTH_MS is how often /healthz is read for what no stream carries: health, store, open streams. */
const HEALTH_MS = 2000;

/** Health is /healthz's answer. */
interface Health {
  status: string;
  registryId: string;
  storeKind?: string;
  store?: string;
  heartbeatStreams?: number;
  watchers?: number;
}

/**
 * Dashboard is the page: it builds the views once and keeps them in step
 * with a NamespaceView (one LiveWatch per namespace), redrawing at most
 * once per animation frame.
 */
class Dashboard {
  private readonly credentials = new Credentials();
  private readonly client = createRegistryClient(this.credentials);
  private view = new NamespaceView("default");
  private watch: LiveWatch;
  /** listed is ListServices' answer, shown until the watch's first snapshot ends. */
  private listed: ServiceLine[] = [];
  private frame = 0;
  private health: Health | undefined;

  private readonly fields = {
    registry: h("code", { "data-field": "registry" }, "…"),
    revision: h("span", { "data-field": "revision" }, "…"),
    store: h("span", { "data-field": "store" }, "…"),
    health: h("span", { "data-field": "health" }, "…"),
    services: h("span", { "data-field": "services" }, "…"),
    instances: h("span", { "data-field": "instances" }, "…"),
    heartbeats: h("span", { "data-field": "heartbeats" }, "…"),
    watchers: h("span", { "data-field": "watchers" }, "…"),
  };
  private readonly banner = h("div", { class: "banner", role: "status", hidden: true });
  private readonly notice = h("div", { class: "notice", role: "status", hidden: true });
  private noticeTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly tokenForm: HTMLFormElement;
  private readonly tokenInput: HTMLInputElement;
  private readonly tokenMessage = h("p", {});
  private readonly namespaceInput: HTMLInputElement;
  private readonly services: ServicesView;
  private readonly table = new InstanceTable("Instances");
  private readonly tableTitle = h("h2", { id: "instances-title" }, "Instances");
  private readonly tableSummary = h("p", { class: "muted", "data-field": "instance-summary" });
  private readonly instanceFilter: HTMLInputElement;
  private readonly factsError = h("p", { class: "error", role: "alert", hidden: true });
  private readonly feed = new EventFeed();
  private readonly discover: DiscoverPanel;
  private readonly actions = new ActionsPanel(this.credentials);
  private readonly configPanel = new ConfigPanel(this.credentials);
  private readonly facts: LiveFactsLoader;
  private selected = "";
  /** linesOf caches the service lines (counts by status and zone) of a view at a number of changes: recounted only after a change. */
  private linesOf: { view: NamespaceView | undefined; changes: number; lines: ServiceLine[]; instances: number } = { view: undefined, changes: -1, lines: [], instances: 0 };

  constructor(root: HTMLElement) {
    this.facts = new LiveFactsLoader(
      this.client,
      () => this.view.namespace,
      (s) => this.view.counts(s).total,
      () => this.invalidate(),
    );
    this.services = new ServicesView(
      (s) => this.select(s),
      () => this.invalidate(),
    );
    this.discover = new DiscoverPanel(this.client, () => this.view.namespace);

    const tokenId = uid("token");
    this.tokenInput = h("input", { id: tokenId, type: "password", autocomplete: "off", required: true });
    this.tokenForm = h(
      "form",
      { class: "token", hidden: true, "aria-label": "Token" },
      this.tokenMessage,
      h("label", { for: tokenId }, "Bearer token (kept in this page's memory only)"),
      this.tokenInput,
      h("button", { type: "submit" }, "Use token"),
    );
    this.tokenForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.credentials.set(this.tokenInput.value);
      this.tokenInput.value = "";
      this.tokenForm.hidden = true;
      this.watch.retry();
      this.actions.recheck();
      this.configPanel.recheck();
      void this.listServices();
      if (this.selected !== "") void this.facts.read();
    });

    const nsId = uid("namespace");
    this.namespaceInput = h("input", { id: nsId, value: "default", autocomplete: "off", required: true, pattern: "[A-Za-z0-9._\\-]{1,128}" });
    const nsForm = h("form", { class: "namespace" }, h("label", { for: nsId }, "Namespace"), this.namespaceInput, h("button", { type: "submit" }, "Watch"));
    nsForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.watchNamespace(this.namespaceInput.value.trim());
    });

    const filterId = uid("instance-filter");
    this.instanceFilter = h("input", { id: filterId, type: "search", placeholder: "id, address, zone, version, tag…", autocomplete: "off" });
    this.instanceFilter.addEventListener("input", () => this.invalidate());
    const refresh = h("button", { type: "button" }, "Refresh load and lease");
    refresh.addEventListener("click", () => void this.facts.read());

    const stat = (label: string, el: HTMLElement): HTMLElement => h("div", { class: "stat" }, h("span", { class: "label" }, label), el);
    const f = this.fields;
    root.append(
      h(
        "header",
        { class: "top" },
        h("h1", {}, "Maxine"),
        stat("registry", f.registry),
        stat("revision", f.revision),
        stat("store", f.store),
        stat("health", f.health),
        stat("services", f.services),
        stat("instances", f.instances),
        stat("heartbeat streams", f.heartbeats),
        stat("watchers", f.watchers),
      ),
      this.banner,
      this.notice,
      this.tokenForm,
      h(
        "main",
        { class: "layout" },
        h("section", { class: "panel services", "aria-labelledby": "services-title" }, h("h2", { id: "services-title" }, "Services"), nsForm, this.services.root),
        h(
          "section",
          { class: "panel instances", "aria-labelledby": "instances-title" },
          this.tableTitle,
          h("div", { class: "toolbar" }, h("label", { for: filterId }, "Filter instances"), this.instanceFilter, refresh),
          this.tableSummary,
          this.factsError,
          this.table.root,
        ),
        h(
          "div",
          { class: "side" },
          h("section", { class: "panel", "aria-labelledby": "feed-title" }, h("h2", { id: "feed-title" }, "Live events"), this.feed.root),
          h("section", { class: "panel", "aria-labelledby": "discover-title" }, h("h2", { id: "discover-title" }, "Try Discover"), this.discover.root),
          this.actions.root,
          this.configPanel.root,
        ),
      ),
    );
    this.watch = this.startWatch();
    void this.listServices();
    void this.readHealth();
    setInterval(() => void this.readHealth(), HEALTH_MS);
    setInterval(() => {
      const now = Date.now();
      this.view.prune(now);
      this.facts.tick(now);
      this.feed.rate.tick(now);
      this.invalidate();
    }, 1000);
  }

  private startWatch(): LiveWatch {
    const view = this.view;
    const watch = new LiveWatch(this.client, view, {
      link: (state, detail) => {
        if (view === this.view) this.link(state, detail, view);
      },
      snapshot: (reset, reason, previous) => {
        if (view !== this.view) return;
        if (reset && reason === ResetReason.REGISTRY_CHANGED && previous !== "" && previous !== view.registryId) {
          this.showNotice(`The registry changed: now ${view.registryId} (was ${previous}). The page shows the new registry's state.`);
          this.feed.note(`registry changed: ${previous} → ${view.registryId}`);
        } else if (reset) {
          this.feed.note(`reset snapshot (${ResetReason[reason]?.toLowerCase() ?? reason}) at r${view.revision}`);
        }
        if (this.selected !== "") this.facts.select(this.selected);
        this.invalidate();
      },
      event: (entry) => {
        if (view !== this.view) return;
        this.feed.add(entry);
        this.facts.eventFor(entry.service);
        this.invalidate();
      },
      progress: () => this.invalidate(),
    });
    watch.start();
    return watch;
  }

  private link(state: LinkState, detail: string, view: NamespaceView): void {
    if (state === "reconnecting") {
      this.banner.hidden = false;
      setText(
        this.banner,
        view.synced
          ? `Connection lost (${detail}). Reconnecting; the watch resumes from revision ${view.revision} of registry ${view.registryId}.`
          : `Cannot reach the server (${detail}). Retrying.`,
      );
    } else if (state === "unauthenticated" || state === "denied") {
      this.banner.hidden = true;
      this.tokenForm.hidden = false;
      setText(this.tokenMessage, state === "unauthenticated" ? `This server needs a token: ${detail}` : `This token may not watch namespace ${view.namespace}: ${detail}`);
      this.tokenInput.focus();
    } else if (state === "live") {
      this.banner.hidden = true;
    }
  }

  private showNotice(text: string): void {
    setText(this.notice, text);
    this.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => (this.notice.hidden = true), 15_000);
  }

  private watchNamespace(namespace: string): void {
    if (namespace === "" || namespace === this.view.namespace) return;
    this.watch.stop();
    this.view = new NamespaceView(namespace);
    this.listed = [];
    this.select("");
    this.watch = this.startWatch();
    void this.listServices();
    this.invalidate();
  }

  /** listServices paints the service list from ListServices, before the watch's snapshot (which then replaces it) has ended. */
  private async listServices(): Promise<void> {
    const view = this.view;
    try {
      const res = await this.client.listServices({ namespace: view.namespace });
      if (view !== this.view) return;
      this.listed = res.services.map((s) => ({
        service: s.service,
        counts: { total: s.instanceCount, serving: s.servingCount, draining: 0, notServing: s.instanceCount - s.servingCount },
        zones: new Map(),
      }));
      this.invalidate();
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code !== Code.Unauthenticated && e.code !== Code.PermissionDenied) this.listed = [];
    }
  }

  private async readHealth(): Promise<void> {
    try {
      const res = await fetch("/healthz", { cache: "no-store" });
      this.health = (await res.json()) as Health;
    } catch {
      this.health = { status: "unreachable", registryId: "" };
    }
    this.invalidate();
  }

  private select(service: string): void {
    this.selected = service;
    this.services.selected = service;
    if (service !== "") this.discover.service.value = service;
    this.table.scrollToTop();
    this.facts.select(service);
    this.actions.show(this.view.namespace, service);
    this.configPanel.show(this.view.namespace, service);
    this.invalidate();
  }

  private invalidate(): void {
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private render(): void {
    const view = this.view;
    const f = this.fields;
    setText(f.registry, view.registryId || "…");
    setText(f.revision, view.synced ? String(view.revision) : "…");
    const hh = this.health;
    setText(f.store, hh?.storeKind === undefined ? "…" : hh.store !== undefined ? `${hh.storeKind} (${hh.store})` : hh.storeKind);
    setText(f.health, hh?.status ?? "…");
    setAttr(f.health, "data-status", hh?.status);
    setText(f.heartbeats, hh?.heartbeatStreams === undefined ? "…" : String(hh.heartbeatStreams));
    setText(f.watchers, hh?.watchers === undefined ? "…" : String(hh.watchers));

    if (this.linesOf.view !== view || this.linesOf.changes !== view.changes) {
      this.linesOf = { view, changes: view.changes, lines: [...view.services.keys()].sort().map((s) => this.line(s)), instances: view.instanceCount() };
    }
    const lines: ServiceLine[] = view.synced ? this.linesOf.lines : this.listed;
    setText(f.services, view.synced ? String(lines.filter((l) => l.counts.total > 0).length) : "…");
    setText(f.instances, view.synced ? String(this.linesOf.instances) : "…");
    this.services.show(lines, view.synced ? `No services in namespace ${view.namespace}.` : "Loading…");

    if (this.selected === "") {
      setText(this.tableTitle, "Instances");
      setText(this.tableSummary, "Choose a service.");
      this.table.show([], () => undefined);
    } else {
      setText(this.tableTitle, `Instances of ${this.selected}`);
      const all = view.rowsOf(this.selected);
      this.actions.offer(all.length <= SUGGEST_MAX ? all.filter((r) => r.removed === undefined).map((r) => r.instance.instanceId) : []);
      const needle = this.instanceFilter.value.trim().toLowerCase();
      const rows = needle === "" ? all : all.filter((r) => matches(r.instance, needle));
      const c = lines.find((l) => l.service === this.selected)?.counts ?? { total: 0, serving: 0, draining: 0, notServing: 0 };
      const facts = c.total > AUTO_LIMIT ? " Load and lease are read on request for a service this large." : "";
      setText(this.tableSummary, `${rows.length} of ${all.length} rows · ${c.serving} serving, ${c.draining} draining, ${c.notServing} not serving.${facts}`);
      this.table.show(rows, this.facts.get);
    }
    this.factsError.hidden = this.facts.error === "";
    setText(this.factsError, this.facts.error);
  }

  private line(service: string): ServiceLine {
    const zones = new Map<string, number>();
    for (const row of this.view.services.get(service)?.values() ?? []) {
      if (row.removed === undefined) zones.set(row.instance.zone, (zones.get(row.instance.zone) ?? 0) + 1);
    }
    return { service, counts: this.view.counts(service), zones };
  }
}

function matches(i: { instanceId: string; host: string; port: number; zone: string; version: string; tags: string[] }, needle: string): boolean {
  return (
    i.instanceId.toLowerCase().includes(needle) ||
    `${i.host}:${i.port}`.toLowerCase().includes(needle) ||
    i.zone.toLowerCase().includes(needle) ||
    i.version.toLowerCase().includes(needle) ||
    i.tags.some((t) => t.toLowerCase().includes(needle))
  );
}

new Dashboard(document.getElementById("app")!);
