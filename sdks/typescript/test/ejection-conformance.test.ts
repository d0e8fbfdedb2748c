import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { OutlierEjector, type EjectionEvent, type EjectionOptions } from "../src/outlier-ejector.js";

// The TypeScript runner of the outlier-ejection scenarios
// (testdata/conformance/ejection/*.json, described in testdata/conformance/README.md):
// each drives an OutlierEjector with a fake clock. The Go and Python runners
// read the same files and must agree.

const DIR = fileURLToPath(new URL("../../../testdata/conformance/ejection/", import.meta.url));

type Step = Record<string, unknown> & { readonly do: string; readonly at_ms: number };
interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly config?: Record<string, number>;
  readonly instances: readonly string[];
  readonly steps: readonly Step[];
}

const CONFIG_KEYS: Record<string, keyof EjectionOptions> = {
  consecutive_failures: "consecutiveFailures",
  interval_ms: "intervalMs",
  base_ejection_time_ms: "baseEjectionTimeMs",
  max_ejection_time_ms: "maxEjectionTimeMs",
  max_ejection_percent: "maxEjectionPercent",
  failure_percentage_threshold: "failurePercentageThreshold",
  failure_percentage_minimum_hosts: "failurePercentageMinimumHosts",
  failure_percentage_request_volume: "failurePercentageRequestVolume",
};

const FIELDS: Record<string, readonly string[]> = {
  report: ["instance", "outcome", "times"],
  pick: ["instance"],
  set_instances: ["instances"],
  expect_picks: ["instances"],
  expect_events: ["events"],
  expect_counters: ["ejected_total", "restored_total", "ejected"],
};

/** asJson turns an ejector event into the scenario files' shape. */
function asJson(e: EjectionEvent): Record<string, unknown> {
  return e.type === "ejected"
    ? { type: e.type, instance: e.instanceId, reason: e.reason, ejections: e.ejections, duration_ms: e.durationMs, at_ms: e.at }
    : { type: e.type, instance: e.instanceId, at_ms: e.at };
}

function run(sc: Scenario): void {
  const options: Record<string, number> = {};
  for (const [k, v] of Object.entries(sc.config ?? {})) {
    const key = CONFIG_KEYS[k];
    if (key === undefined) throw new Error(`${sc.name}: unknown config key ${k}`);
    options[key] = v;
  }
  let now = 0;
  const events: EjectionEvent[] = [];
  const ejector = new OutlierEjector(options, () => now, (e) => events.push(e));
  let members = [...sc.instances];
  ejector.retain(members);
  let seen = 0;
  sc.steps.forEach((step, i) => {
    const where = `${sc.name}: step ${i} (${step.do} at ${step.at_ms} ms)`;
    const known = FIELDS[step.do];
    if (known === undefined) throw new Error(`${where}: unknown step kind`);
    for (const f of Object.keys(step)) {
      if (f !== "do" && f !== "at_ms" && !known.includes(f)) throw new Error(`${where}: unknown field ${f}`);
    }
    if (!(step.at_ms >= now)) throw new Error(`${where}: at_ms goes back`);
    now = step.at_ms;
    switch (step.do) {
      case "report": {
        const outcome = step.outcome as string;
        if (outcome !== "success" && outcome !== "failure") throw new Error(`${where}: outcome must be success or failure`);
        for (let n = 0; n < ((step.times as number | undefined) ?? 1); n++) ejector.report(step.instance as string, outcome === "success");
        break;
      }
      case "pick":
        expect(ejector.allowed(members), where).toContain(step.instance);
        ejector.picked(step.instance as string);
        break;
      case "set_instances":
        members = [...(step.instances as string[])];
        ejector.retain(members);
        break;
      case "expect_picks":
        expect([...ejector.allowed(members)], where).toEqual(step.instances);
        break;
      case "expect_events":
        expect(events.slice(seen).map(asJson), where).toEqual(step.events);
        seen = events.length;
        break;
      case "expect_counters":
        expect(ejector.counters(), where).toEqual({
          ejectedTotal: step.ejected_total,
          restoredTotal: step.restored_total,
          ejected: step.ejected,
        });
        break;
    }
  });
}

const files = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();

describe("outlier ejection conformance (testdata/conformance/ejection)", () => {
  it("has scenarios", () => expect(files.length).toBeGreaterThanOrEqual(9));
  for (const file of files) {
    const sc = JSON.parse(readFileSync(DIR + file, "utf8")) as Scenario;
    it(sc.name, () => {
      expect(sc.name).toBe(file.replace(/\.json$/, ""));
      run(sc);
    });
  }
});
