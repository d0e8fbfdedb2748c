import { h, setAttr, setText, uid } from "./dom.js";
import type { StatusCounts } from "./namespace-view.js";

/** ServiceLine is one service as the list shows it. */
export interface ServiceLine {
  readonly service: string;
  readonly counts: StatusCounts;
  /** zones counts live instances by zone ("" for none). */
  readonly zones: ReadonlyMap<string, number>;
}

interface Item {
  readonly li: HTMLLIElement;
  readonly button: HTMLButtonElement;
  readonly name: HTMLSpanElement;
  readonly counts: HTMLSpanElement;
  readonly zones: HTMLSpanElement;
}

/**
 * ServicesView lists a namespace's services, each a button (Tab and Enter
 * select it) with its instance counts by status and zone, narrowed by a
 * filter box. Items are kept by name, so an update changes text in place
 * and keyboard focus stays where it was.
 */
export class ServicesView {
  readonly root: HTMLElement;
  readonly filter: HTMLInputElement;
  private readonly list: HTMLUListElement;
  private readonly empty: HTMLParagraphElement;
  private readonly items = new Map<string, Item>();
  selected = "";

  constructor(private readonly onSelect: (service: string) => void, onFilter: () => void) {
    const filterId = uid("service-filter");
    this.filter = h("input", { id: filterId, type: "search", placeholder: "name contains…", autocomplete: "off" });
    this.filter.addEventListener("input", onFilter);
    this.list = h("ul", { class: "service-list", "aria-label": "Services" });
    this.empty = h("p", { class: "muted" }, "No services.");
    this.root = h("div", {}, h("label", { for: filterId }, "Filter services"), this.filter, this.list, this.empty);
  }

  /** show lists lines (already in name order), those whose name contains the filter text. */
  show(lines: readonly ServiceLine[], emptyText: string): void {
    const needle = this.filter.value.trim().toLowerCase();
    const shown = lines.filter((l) => l.service.toLowerCase().includes(needle));
    const keep = new Set(shown.map((l) => l.service));
    for (const [name, item] of this.items) {
      if (!keep.has(name)) {
        item.li.remove();
        this.items.delete(name);
      }
    }
    let prev: HTMLLIElement | undefined;
    for (const line of shown) {
      let item = this.items.get(line.service);
      if (item === undefined) {
        item = this.newItem(line.service);
        this.items.set(line.service, item);
      }
      // keep name order, moving an element only when it is out of place
      const want = prev === undefined ? this.list.firstElementChild : prev.nextElementSibling;
      if (want !== item.li) (prev === undefined ? this.list.prepend(item.li) : prev.after(item.li));
      prev = item.li;
      const c = line.counts;
      const parts = [`${c.total} instance${c.total === 1 ? "" : "s"}`, `${c.serving} serving`];
      if (c.draining > 0) parts.push(`${c.draining} draining`);
      if (c.notServing > 0) parts.push(`${c.notServing} not serving`);
      setText(item.counts, parts.join(" · "));
      const zones = [...line.zones].sort(([a], [b]) => (a < b ? -1 : 1)).map(([z, n]) => `${z === "" ? "no zone" : z}: ${n}`);
      setText(item.zones, zones.join(" · "));
      setAttr(item.button, "aria-pressed", String(line.service === this.selected));
    }
    this.empty.hidden = shown.length > 0;
    setText(this.empty, needle !== "" && lines.length > 0 ? `No service name contains "${needle}".` : emptyText);
  }

  private newItem(service: string): Item {
    const name = h("span", { class: "name" }, service);
    const counts = h("span", { class: "counts" });
    const zones = h("span", { class: "zones muted" });
    const button = h("button", { type: "button", class: "service", "aria-pressed": "false", "data-service": service }, name, counts, zones);
    button.addEventListener("click", () => this.onSelect(service));
    return { li: h("li", {}, button), button, name, counts, zones };
  }
}
