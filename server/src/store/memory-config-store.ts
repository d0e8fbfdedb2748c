import type { ConfigLimits } from "../domain/config-entry.js";
import { BatchedConfigStore } from "./batched-config-store.js";

/**
 * MemoryConfigStore keeps service configuration in this process only, lost
 * on restart (MAXINE_DATA_DIR=off): for tests and for a server that must
 * write nothing to disk. A restart gets a new registryId, so a watch that
 * resumes is told to reset.
 */
export class MemoryConfigStore extends BatchedConfigStore {
  constructor(limits: ConfigLimits) {
    super(limits);
  }

  protected async persist(): Promise<boolean> {
    return true;
  }
}
