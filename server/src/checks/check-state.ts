import type { CheckResult, CheckSpec, CheckStatus } from "../domain/health.js";

/**
 * CheckCounts is what a checker keeps of one instance's recent probes
 * between them: the runs of passes and failures, and when the current run
 * of failures began. Not stored: a replica that takes a check over starts
 * counting afresh from the stored result.
 */
export interface CheckCounts {
  passes: number;
  failures: number;
  /** failingSince is when the current run of failures began (undefined: the last probe passed). */
  failingSince: number | undefined;
}

/** Verdict is what one probe's outcome asks of the registry. */
export interface Verdict {
  /** result to store, when it differs from the stored one (a new status, or a new reason while not passing). */
  readonly result: CheckResult | undefined;
  /** deregister is set when the failures have lasted the check's deregister-after. */
  readonly deregister: boolean;
}

/**
 * judge applies one probe's outcome (at now, the probe's start) to counts
 * and compares what follows with the stored result: a status changes after
 * healthy_threshold passes in a row (to PASSING) or unhealthy_threshold
 * failures in a row (to FAILING); while PENDING or FAILING, a failure with
 * another reason updates the message; a single failure of a PASSING check
 * changes nothing stored. Comparing with what is stored (rather than with
 * what this checker last wrote) repairs a result another writer replaced.
 */
export function judge(check: CheckSpec, stored: CheckResult, counts: CheckCounts, pass: boolean, message: string, now: number): Verdict {
  if (pass) {
    counts.passes++;
    counts.failures = 0;
    counts.failingSince = undefined;
  } else {
    counts.failures++;
    counts.passes = 0;
    counts.failingSince ??= now;
  }
  let status: CheckStatus = stored.status;
  if (pass && counts.passes >= check.healthyThreshold) status = "PASSING";
  if (!pass && counts.failures >= check.unhealthyThreshold) status = "FAILING";
  const deregister = !pass && check.deregisterAfterMs > 0 && now - counts.failingSince! >= check.deregisterAfterMs;
  if (status !== stored.status) return { result: { status, message, changedAt: now }, deregister };
  // same status: a failing (or not yet passing) check says why it fails now; a pass or a lone failure of a passing check is not news
  if (!pass && status !== "PASSING" && message !== stored.message) return { result: { status, message, changedAt: stored.changedAt }, deregister };
  return { result: undefined, deregister };
}
