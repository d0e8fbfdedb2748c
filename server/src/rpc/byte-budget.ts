import { Reason, RegistryError } from "../domain/errors.js";

/**
 * ByteBudget bounds bytes held on behalf of clients (unfinished request
 * messages): a connection's budget draws on the server's, so neither one
 * client nor many together can make the server buffer without bound.
 * reserve refuses with RESOURCE_EXHAUSTED naming the setting, before
 * anything is buffered.
 */
export class ByteBudget {
  private used = 0;

  constructor(
    readonly limit: number,
    private readonly setting: string,
    private readonly parent?: ByteBudget,
  ) {}

  /** held is the number of bytes reserved now. */
  get held(): number {
    return this.used;
  }

  /** reserve takes n bytes, or throws RESOURCE_EXHAUSTED when this budget or its parent has no room; release(n) must follow. */
  reserve(n: number): void {
    if (this.used + n > this.limit) {
      throw new RegistryError(
        Reason.RESOURCE_EXHAUSTED,
        `request: a message of ${n} bytes would exceed the ${this.limit} bytes of unfinished requests allowed (${this.setting}); ${this.used} are held`,
      );
    }
    this.parent?.reserve(n);
    this.used += n;
  }

  /** release gives back n reserved bytes. */
  release(n: number): void {
    this.used -= n;
    this.parent?.release(n);
  }
}
