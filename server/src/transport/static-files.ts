import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";

/** Request is what StaticFiles reads of a request, HTTP/1.1 or HTTP/2 compat. */
interface Request {
  readonly url?: string | undefined;
  readonly method?: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
}

/** Response is what StaticFiles writes to, HTTP/1.1 or HTTP/2 compat. */
interface Response {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: Buffer | string): unknown;
}

/** IMMUTABLE is the cache policy of an asset whose name carries its content hash: a new build has new names. */
const IMMUTABLE = "public, max-age=31536000, immutable";
/** REVALIDATE is the cache policy of the page itself: always asked again (ETag makes that a 304). */
const REVALIDATE = "no-cache";

/**
 * SECURITY_HEADERS go on every answer of the dashboard: its scripts,
 * styles and calls come from the server's own origin only, and no other
 * site may frame it.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

interface StaticFile {
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
  readonly etag: string;
}

/**
 * StaticFiles serves a built web page (the dashboard, ui/dist) under a
 * path prefix, from memory: the files are read once at startup, each with
 * its headers ready. Files under `assets/` carry their content hash in
 * their names (the build names them so) and are cached for a year as
 * immutable; every other file (index.html) is revalidated on each load
 * (no-cache with an ETag, answered 304 when unchanged). GET and HEAD only.
 *
 * It is HTTP only, like /healthz and /metrics: the Host and CORS checks
 * (HttpGuard) run before it, for every protocol, as for every request.
 */
export class StaticFiles {
  private constructor(
    /** prefix is the path the files are served under, with its trailing slash ("/ui/"). */
    readonly prefix: string,
    private readonly files: ReadonlyMap<string, StaticFile>,
    /** missing says why nothing is served (the directory was not built), or undefined. */
    readonly missing: string | undefined,
  ) {}

  /**
   * load reads every file under dir. A directory that does not exist or
   * has no index.html gives a StaticFiles that answers 404 saying the page
   * is not built (missing), so that a server started from sources without
   * a build still starts.
   */
  static async load(dir: string, prefix: string): Promise<StaticFiles> {
    const files = new Map<string, StaticFile>();
    const names = await filesUnder(dir).catch(() => []);
    for (const name of names) {
      const rel = name.split(path.sep).join("/");
      const body = await readFile(path.join(dir, name));
      const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
      const headers: Record<string, string> = {
        ...SECURITY_HEADERS,
        "content-type": TYPES[path.extname(rel)] ?? "application/octet-stream",
        "content-length": String(body.length),
        "cache-control": rel.startsWith("assets/") ? IMMUTABLE : REVALIDATE,
        etag,
      };
      files.set(rel, { body, headers, etag });
    }
    // the answer names no server path; app.ts logs the directory
    const missing = files.has("index.html") ? undefined : "the dashboard is not built: its directory has no index.html (npm run build builds ui/dist)";
    return new StaticFiles(prefix, files, missing);
  }

  /**
   * serve answers a request for a path under prefix (or the prefix without
   * its slash, redirected to it) and returns true; any other path is left
   * to the caller (false).
   */
  serve(req: Request, res: Response): boolean {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const pathname = q < 0 ? url : url.slice(0, q);
    const bare = this.prefix.slice(0, -1);
    if (pathname !== bare && !pathname.startsWith(this.prefix)) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      plain(res, 405, `${req.method} is not allowed on ${this.prefix}: the dashboard answers GET and HEAD\n`, { allow: "GET, HEAD" });
      return true;
    }
    if (pathname === bare) {
      res.writeHead(308, { location: this.prefix + (q < 0 ? "" : url.slice(q)), "content-length": "0" });
      res.end("");
      return true;
    }
    if (this.missing !== undefined) {
      plain(res, 404, `${this.missing}\n`);
      return true;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(pathname.slice(this.prefix.length));
    } catch {
      rel = "\0";
    }
    if (rel === "") rel = "index.html";
    // only the names read at startup are served: no path is ever joined onto the directory
    const file = this.files.get(rel);
    if (file === undefined) {
      plain(res, 404, `not found: ${this.prefix}${rel.slice(0, 200)} is not a file of the dashboard\n`);
      return true;
    }
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, { etag: file.etag, "cache-control": file.headers["cache-control"]! });
      res.end("");
      return true;
    }
    res.writeHead(200, file.headers);
    if (req.method === "HEAD") res.end("");
    else res.end(file.body);
    return true;
  }
}

/** filesUnder lists the files under dir, recursively, as paths relative to it. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

function plain(res: Response, status: number, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(body)), ...extra });
  res.end(body);
}
