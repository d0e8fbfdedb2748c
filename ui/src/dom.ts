/** Child is what h accepts as content: elements, text, or nothing. */
export type Child = Node | string | false | undefined;

/**
 * h builds an element: attributes by name (false and undefined leave one
 * out, true sets it empty), then its children. The dashboard's views use it
 * instead of a view library: they build their DOM once and then change
 * only the text and attributes that differ.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== false && c !== undefined) el.append(c);
  return el;
}

/** setText changes an element's text only when it differs (no layout work otherwise). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** setAttr changes (or, with undefined, removes) an attribute only when it differs. */
export function setAttr(el: Element, name: string, value: string | undefined): void {
  if (value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== value) {
    el.setAttribute(name, value);
  }
}

let ids = 0;
/** uid makes an element id unique in the page (for label/for and aria references). */
export function uid(prefix: string): string {
  return `${prefix}-${++ids}`;
}
