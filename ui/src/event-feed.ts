import { h, setText } from "./dom.js";
import type { FeedEntry } from "./namespace-view.js";
import { RateChart } from "./rate-chart.js";

/** FEED_LINES is how many events the feed keeps on screen. */
const FEED_LINES = 100;

/**
 * EventFeed shows the watch's events as they come, newest first: revision,
 * type, service/instance, status or removal reason. Pause holds the list
 * still (events keep counting, shown on the Resume button) for reading.
 * A bar chart beside it shows events per second over the last minute.
 */
export class EventFeed {
  readonly root: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly pause: HTMLButtonElement;
  private held: FeedEntry[] = [];
  private paused = false;
  /** rate charts events per second, paused or not. */
  readonly rate = new RateChart();

  constructor() {
    this.list = h("ol", { class: "feed", "aria-label": "Events, newest first", reversed: true });
    this.pause = h("button", { type: "button", "aria-pressed": "false" }, "Pause");
    this.pause.addEventListener("click", () => this.toggle());
    this.root = h("div", {}, h("div", { class: "feed-bar" }, this.pause, this.rate.root), this.list);
  }

  /** add shows one event (or holds it while paused). */
  add(e: FeedEntry): void {
    this.rate.count(e.at);
    if (this.paused) {
      this.held.push(e);
      if (this.held.length > FEED_LINES) this.held.shift();
      setText(this.pause, `Resume (${this.held.length} new)`);
      return;
    }
    this.show(e);
  }

  /** note adds a line that is not an event (a reset snapshot, a registry change). */
  note(text: string): void {
    this.list.prepend(h("li", { class: "note" }, text));
    this.trim();
  }

  private show(e: FeedEntry): void {
    const time = new Date(e.at).toLocaleTimeString([], { hour12: false });
    this.list.prepend(
      h(
        "li",
        { class: `ev ${e.type.toLowerCase()}` },
        h("span", { class: "rev" }, `r${e.revision}`),
        h("span", { class: "type" }, e.type),
        h("span", { class: "who" }, `${e.service}/${e.instanceId}`),
        h("span", { class: "detail" }, e.detail),
        h("time", { class: "muted" }, time),
      ),
    );
    this.trim();
  }

  private trim(): void {
    while (this.list.childElementCount > FEED_LINES) this.list.lastElementChild!.remove();
  }

  private toggle(): void {
    this.paused = !this.paused;
    this.pause.setAttribute("aria-pressed", String(this.paused));
    if (!this.paused) {
      for (const e of this.held.splice(0)) this.show(e);
    }
    setText(this.pause, this.paused ? "Resume (0 new)" : "Pause");
  }
}
