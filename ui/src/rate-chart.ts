import { setAttr } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
/** SECONDS is how many seconds of history the chart shows, one bar each. */
const SECONDS = 60;
const WIDTH = 240;
const HEIGHT = 36;

/**
 * RateChart draws events per second over the last minute as bars (an
 * inline SVG, built once: each tick moves the counts and resizes the bars),
 * labelled with the current and highest rate for screen readers.
 */
export class RateChart {
  readonly root: SVGSVGElement;
  private readonly bars: SVGRectElement[] = [];
  private readonly counts = new Array<number>(SECONDS).fill(0);
  private second = 0;

  constructor() {
    this.root = document.createElementNS(SVG, "svg");
    this.root.setAttribute("class", "rate");
    this.root.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    this.root.setAttribute("role", "img");
    const w = WIDTH / SECONDS;
    for (let i = 0; i < SECONDS; i++) {
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", String(i * w + 0.5));
      r.setAttribute("width", String(w - 1));
      r.setAttribute("y", String(HEIGHT));
      r.setAttribute("height", "0");
      this.root.append(r);
      this.bars.push(r);
    }
    this.tick(Date.now());
  }

  /** count adds one event at a moment. */
  count(now: number): void {
    this.roll(now);
    this.counts[SECONDS - 1]!++;
  }

  /** tick moves the chart to now and redraws it (called every second). */
  tick(now: number): void {
    this.roll(now);
    const max = Math.max(1, ...this.counts);
    for (let i = 0; i < SECONDS; i++) {
      const h = Math.round((this.counts[i]! / max) * (HEIGHT - 2));
      setAttr(this.bars[i]!, "y", String(HEIGHT - h));
      setAttr(this.bars[i]!, "height", String(h));
    }
    const last = this.counts[SECONDS - 2]!;
    setAttr(this.root, "aria-label", `Events per second over the last minute: ${last} in the last full second, at most ${Math.max(...this.counts)}`);
  }

  private roll(now: number): void {
    const s = Math.floor(now / 1000);
    if (this.second === 0) this.second = s;
    const shift = Math.min(SECONDS, s - this.second);
    if (shift <= 0) return;
    this.counts.splice(0, shift);
    for (let i = 0; i < shift; i++) this.counts.push(0);
    this.second = s;
  }
}
