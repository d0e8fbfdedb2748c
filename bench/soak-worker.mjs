// One process of the soak (bench/soak.mjs): `sessions` slots on one client,
// each cycling for ever: a Session opens and registers one instance, lives
// for a random 10-60 s, closes (deregistering it), rests 0-2 s. The parent
// SIGKILLs whole workers to kill their sessions as a crash would, and at the
// end sends "freeze": no session opens or closes any more, the open ones
// keep beating, so that the registry holds still for the final comparison.
// Every 5 s it sends its counters to the parent over IPC.
//
// Usage (by soak.mjs): node bench/soak-worker.mjs <baseUrl> <sessions> <worker>
import { createMaxineClient, Session } from "@maxine/sdk";

const [baseUrl, sessionsArg, worker] = process.argv.slice(2);
const SESSIONS = Number(sessionsArg);
const client = createMaxineClient({ baseUrl });
const counts = { opened: 0, closed: 0, errors: {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let frozen = false;
const never = new Promise(() => {});
const unlessFrozen = () => (frozen ? never : undefined);
process.on("message", (m) => {
  if (m === "freeze") frozen = true;
});
const countError = (where, err) => {
  const k = `${where}: ${err?.message ?? err}`;
  counts.errors[k] = (counts.errors[k] ?? 0) + 1;
};

async function slot(k) {
  // spread the first openings over 10 s
  await sleep(Math.random() * 10_000);
  for (let cycle = 0; ; cycle++) {
    await unlessFrozen();
    const s = new Session(client);
    s.on("error", (err) => countError("session", err));
    try {
      await s.register({ service: `soak-${k % 20}`, instanceId: `w${worker}-s${k}`, host: "10.1.0.1", port: 8000 + k, metadata: { cycle: String(cycle) } });
      counts.opened++;
      await sleep(10_000 + Math.random() * 50_000);
      await unlessFrozen();
      await s.close();
      counts.closed++;
    } catch (err) {
      countError("register or close", err);
      await s.close().catch(() => {});
    }
    await sleep(Math.random() * 2000);
  }
}

for (let k = 0; k < SESSIONS; k++) void slot(k);
setInterval(() => process.send?.({ worker, ...counts }), 5000);
process.send?.({ worker, ready: true });
