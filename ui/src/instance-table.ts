import { ageText, FLASH_MS, statusName, updatedAtMs, type Row } from "./namespace-view.js";
import { h, setAttr, setText } from "./dom.js";

/** ROW_HEIGHT is every row's height in pixels (the table is virtualized: only the rows in sight exist). */
export const ROW_HEIGHT = 28;
/** OVERSCAN rows are kept above and below the visible ones, so a fast scroll shows no gap. */
const OVERSCAN = 8;

/** LiveFacts are what a Discover with include_all says of an instance and no stream carries: its reported load and lease deadline. */
export interface LiveFacts {
  readonly load: number | undefined;
  readonly leaseExpiresAt: number | undefined;
}

const COLUMNS = ["Instance", "Address", "Zone", "Version", "Tags", "Metadata", "Status", "Weight", "Load", "Lease left", "Changed"] as const;

interface PooledRow {
  readonly el: HTMLDivElement;
  readonly cells: HTMLDivElement[];
  /** shown is the row object last written into the cells, and the moment it changed: the cells are rewritten only when these differ. */
  shown: Row | undefined;
  shownChange: number;
}

/**
 * InstanceTable shows a service's instances, one row each, virtualized: a
 * scrolling viewport over a spacer as tall as every row, with a small pool
 * of row elements moved to the rows in sight. 10,000 instances cost the
 * DOM about as much as 40. It is an ARIA table (rows and cells, row
 * indexes and count), its viewport focusable so the keyboard scrolls it.
 */
export class InstanceTable {
  readonly root: HTMLDivElement;
  private readonly viewport: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly body: HTMLDivElement;
  private readonly pool: PooledRow[] = [];
  private rows: readonly Row[] = [];
  private facts: (id: string) => LiveFacts | undefined = () => undefined;
  private frame = 0;

  constructor(label: string) {
    this.spacer = h("div", { class: "spacer", "aria-hidden": "true" });
    this.body = h("div", { class: "rows", role: "presentation" });
    // the scrolling viewport is the table's body: focusable, so the keyboard scrolls it
    this.viewport = h("div", { class: "viewport", role: "rowgroup", tabindex: 0, "aria-label": `${label} (scroll with the arrow keys, Page Up, Page Down, Home and End)` }, this.spacer, this.body);
    const header = h("div", { class: "row head", role: "row", "aria-rowindex": 1 }, ...COLUMNS.map((c) => h("div", { role: "columnheader", class: "cell" }, c)));
    this.root = h("div", { class: "table", role: "table", "aria-label": label, "aria-rowcount": 1 }, h("div", { role: "rowgroup" }, header), this.viewport);
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.viewport.addEventListener("keydown", (e) => this.key(e));
  }

  /** show sets the rows (sorted) and where their live facts come from, and draws what is in sight. */
  show(rows: readonly Row[], facts: (id: string) => LiveFacts | undefined): void {
    this.rows = rows;
    this.facts = facts;
    this.render();
  }

  /** scrollToTop shows the first rows (another service was chosen). */
  scrollToTop(): void {
    this.viewport.scrollTop = 0;
  }

  /** render draws the rows in sight; it reads the viewport's scroll position and height once. */
  render(): void {
    const n = this.rows.length;
    setAttr(this.root, "aria-rowcount", String(n + 1));
    const height = `${n * ROW_HEIGHT}px`;
    if (this.spacer.style.height !== height) this.spacer.style.height = height;
    const top = this.viewport.scrollTop;
    const visible = Math.ceil((this.viewport.clientHeight || 600) / ROW_HEIGHT);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(n, first + visible + 2 * OVERSCAN);
    const now = Date.now();
    while (this.pool.length < last - first) this.pool.push(this.newRow());
    for (let p = 0; p < this.pool.length; p++) {
      const pooled = this.pool[p]!;
      const index = first + p;
      if (index >= last) {
        if (!pooled.el.hidden) pooled.el.hidden = true;
        setAttr(pooled.el, "data-id", undefined);
        pooled.shown = undefined;
        continue;
      }
      if (pooled.el.hidden) pooled.el.hidden = false;
      this.fill(pooled, this.rows[index]!, index, now);
    }
  }

  private schedule(): void {
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private key(e: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW_HEIGHT) - 1) * ROW_HEIGHT;
    const by: Record<string, number> = { ArrowDown: ROW_HEIGHT, ArrowUp: -ROW_HEIGHT, PageDown: page, PageUp: -page };
    if (e.key === "Home") this.viewport.scrollTop = 0;
    else if (e.key === "End") this.viewport.scrollTop = this.viewport.scrollHeight;
    else if (by[e.key] !== undefined) this.viewport.scrollTop += by[e.key]!;
    else return;
    e.preventDefault();
  }

  private newRow(): PooledRow {
    const cells = COLUMNS.map(() => h("div", { class: "cell", role: "cell" }));
    const el = h("div", { class: "row", role: "row" }, ...cells);
    this.body.append(el);
    return { el, cells, shown: undefined, shownChange: -1 };
  }

  private fill(p: PooledRow, row: Row, index: number, now: number): void {
    const inst = row.instance;
    const y = `translateY(${index * ROW_HEIGHT}px)`;
    if (p.el.style.transform !== y) p.el.style.transform = y;
    setAttr(p.el, "aria-rowindex", String(index + 2));
    const c = p.cells;
    if (p.shown !== row || p.shownChange !== row.changedAt) {
      p.shown = row;
      p.shownChange = row.changedAt;
      setAttr(p.el, "data-id", inst.instanceId);
      setText(c[0]!, inst.instanceId);
      setText(c[1]!, `${inst.host}:${inst.port}`);
      setText(c[2]!, inst.zone);
      setText(c[3]!, inst.version);
      setText(c[4]!, inst.tags.join(", "));
      const md = Object.entries(inst.metadata).map(([k, v]) => `${k}=${v}`).join(", ");
      setText(c[5]!, md);
      setAttr(c[5]!, "title", md === "" ? undefined : md);
      const status = row.removed !== undefined ? `REMOVED (${row.removed.reason})` : statusName(inst.status);
      setText(c[6]!, status);
      setAttr(c[6]!, "data-status", row.removed !== undefined ? "REMOVED" : statusName(inst.status));
      setText(c[7]!, String(inst.weight));
    }
    // flash a change the page saw; fade a removal (the CSS animations run once per class change)
    const flashing = row.changedAt > 0 && now - row.changedAt < FLASH_MS && row.removed === undefined;
    p.el.classList.toggle("flash", flashing);
    p.el.classList.toggle("removed", row.removed !== undefined);
    const facts = row.removed === undefined ? this.facts(inst.instanceId) : undefined;
    setText(c[8]!, facts?.load === undefined ? "" : facts.load.toFixed(2));
    setText(c[9]!, facts?.leaseExpiresAt === undefined ? "" : leaseText(facts.leaseExpiresAt - now));
    const changed = row.removed?.at ?? (updatedAtMs(inst) || row.changedAt);
    setText(c[10]!, changed > 0 ? `${ageText(now - changed)} ago` : "");
  }
}

/** leaseText writes a lease's time left: "7.4s"; "renewing" once past (the next read shows the renewed deadline). */
function leaseText(ms: number): string {
  if (ms <= 0) return "renewing";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  return s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
