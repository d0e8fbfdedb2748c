// A small SVG bar chart writer for docs/benchmarks/, so that results need no
// plotting library: groups of bars (one bar per series) on a shared y axis.

const COLORS = ["#3b6ea5", "#d9822b", "#5a9e6f", "#9c5ba8"];
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");

/**
 * barChart renders groups (e.g. N = 100, 1000, 10000) of bars (one per
 * series, e.g. Maxine and etcd) with their values printed above the bars.
 * @param {{title: string, unit: string, groups: string[], series: {name: string, values: number[]}[], log?: boolean}} spec
 */
export function barChart({ title, unit, groups, series, log = false }) {
  const W = 640, H = 360, left = 60, right = 20, top = 50, bottom = 60;
  const plotW = W - left - right, plotH = H - top - bottom;
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const max = Math.max(...all, 1);
  const min = log ? Math.max(Math.min(...all) / 2, 0.01) : 0;
  const y = (v) => {
    if (!(v > 0)) return top + plotH;
    const f = log ? (Math.log10(v) - Math.log10(min)) / (Math.log10(max * 1.2) - Math.log10(min)) : v / (max * 1.15);
    return top + plotH * (1 - Math.max(0, Math.min(1, f)));
  };
  const groupW = plotW / groups.length;
  const barW = Math.min(60, (groupW * 0.7) / series.length);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}" stroke="#444"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#444"/>`,
    `<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">${esc(unit)}${log ? " (log scale)" : ""}</text>`,
  ];
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, si) => {
      const v = s.values[gi];
      const x = x0 + si * barW;
      const yy = y(v);
      out.push(`<rect x="${x.toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(top + plotH - yy).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"/>`);
      const label = Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) : "n/a";
      out.push(`<text x="${(x + (barW - 4) / 2).toFixed(1)}" y="${(yy - 4).toFixed(1)}" text-anchor="middle" font-size="11">${label}</text>`);
    });
    out.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${esc(g)}</text>`);
  });
  series.forEach((s, si) => {
    const x = left + si * 140;
    out.push(`<rect x="${x}" y="${H - 24}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`);
    out.push(`<text x="${x + 18}" y="${H - 14}">${esc(s.name)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/**
 * lineChart renders time series as stacked panels, one per series, each on
 * its own y axis from 0 (RSS in MB and open handles do not share a scale),
 * over a shared x axis, with each panel's last value printed.
 * @param {{title: string, x: number[], xUnit: string, series: {name: string, values: number[]}[]}} spec
 */
export function lineChart({ title, x, xUnit, series }) {
  const W = 640, left = 60, right = 90, top = 40, panelH = 90, gap = 30, bottom = 40;
  const H = top + series.length * (panelH + gap) - gap + bottom;
  const plotW = W - left - right;
  const xMax = Math.max(...x, 1);
  const px = (v) => left + (plotW * v) / xMax;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  series.forEach((s, k) => {
    const y0 = top + k * (panelH + gap);
    const finite = s.values.filter(Number.isFinite);
    const max = Math.max(...finite, 1) * 1.1;
    const py = (v) => y0 + panelH * (1 - Math.max(0, v) / max);
    const points = s.values.map((v, i) => (Number.isFinite(v) ? `${px(x[i]).toFixed(1)},${py(v).toFixed(1)}` : null)).filter(Boolean);
    const color = COLORS[k % COLORS.length];
    const last = finite[finite.length - 1];
    out.push(
      `<text x="${left}" y="${y0 - 6}" fill="${color}">${esc(s.name)}</text>`,
      `<line x1="${left}" y1="${y0 + panelH}" x2="${W - right}" y2="${y0 + panelH}" stroke="#444"/>`,
      `<line x1="${left}" y1="${y0}" x2="${left}" y2="${y0 + panelH}" stroke="#444"/>`,
      `<text x="${left - 6}" y="${y0 + 4}" text-anchor="end">${+(max / 1.1).toPrecision(3)}</text>`,
      `<text x="${left - 6}" y="${y0 + panelH + 4}" text-anchor="end">0</text>`,
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points.join(" ")}"/>`,
    );
    if (last !== undefined) out.push(`<text x="${W - right + 6}" y="${py(last) + 4}" fill="${color}">${+last.toPrecision(3)}</text>`);
  });
  const yAxis = top + series.length * (panelH + gap) - gap;
  for (const t of [0, xMax / 2, xMax]) out.push(`<text x="${px(t)}" y="${yAxis + 18}" text-anchor="middle">${Math.round(t)} ${esc(xUnit)}</text>`);
  out.push("</svg>");
  return out.join("\n");
}
