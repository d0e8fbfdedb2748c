import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../../.tmp/bin/", import.meta.url));

/**
 * goTool is the path of a tool scripts/install-grpc-tools.sh installed into
 * .tmp/bin (npm test runs it first). A missing tool fails the test loudly:
 * these suites never skip.
 */
export function goTool(name: "grpcurl" | "grpc-health-probe"): string {
  const path = BIN + name;
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash scripts/install-grpc-tools.sh\` (npm test runs it before vitest)`);
  return path;
}
