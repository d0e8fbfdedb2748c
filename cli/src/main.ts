import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { deregister, drain, register, undrain } from "./commands/write.js";
import { discover, health, instances, services, STRATEGIES } from "./commands/read.js";
import { watch } from "./commands/watch.js";
import { configDelete, configDiff, configGet, configHistory, configList, configPut, configRollback, configWatch, expectArg, versionArg } from "./commands/config.js";
import { connect, credentialsOf, serversOf, type GlobalOptions } from "./connection.js";
import { ExitCode, failure } from "./errors.js";
import { Output } from "./output.js";

// maxine: the command-line tool of the Maxine registry. Every command is a
// few lines over the TypeScript SDK; exit codes: 0 ok, 1 error, 2 usage,
// 3 not found.

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function keyValue(v: string, prev: Record<string, string>): Record<string, string> {
  const eq = v.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`want key=value, got ${JSON.stringify(v)}`);
  return { ...prev, [v.slice(0, eq)]: v.slice(eq + 1) };
}

function intIn(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** load reads a load to report: a finite number >= 0, as the server's rule for beats.load. */
function load(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`must be a finite number >= 0, got ${JSON.stringify(v)}`);
  return n;
}

/** duration reads 500ms, 10s, 5m or 1h into milliseconds. */
function duration(v: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(v);
  if (m === null) throw new InvalidArgumentError(`must be a duration such as 500ms, 10s, 5m or 1h, got ${JSON.stringify(v)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

/** Run runs one command's work with the global options and the output they ask for. */
type Run = (f: (g: GlobalOptions, out: Output) => Promise<number>) => Promise<void>;

/** program builds the command tree: each command's action hands its work to run. */
function program(run: Run): Command {
  const p = new Command("maxine")
    .description("Command-line tool of the Maxine service registry.")
    .addOption(
      new Option("-s, --server <url>", "server address, host:port or http://host:port; repeat (or comma-separate) to fail over between replicas [env MAXINE_ADDR]")
        .argParser(collect)
        .default([] as string[], "http://127.0.0.1:7400"),
    )
    .addOption(new Option("-n, --namespace <name>", "namespace to act in").env("MAXINE_NAMESPACE").default(""))
    .addOption(new Option("-o, --output <format>", "table for people, json for programs (default: table)").choices(["table", "json"]).env("MAXINE_OUTPUT"))
    .addOption(new Option("--token <token>", "bearer token sent with every call (visible to other users in ps: prefer --token-file or the env variable)").env("MAXINE_TOKEN"))
    .addOption(new Option("--token-file <path>", "file holding the bearer token, read before every call").env("MAXINE_TOKEN_FILE"))
    .addOption(new Option("--cacert <path>", "PEM CA certificate that signed the server's certificate (https:// servers; default: the system's roots)").env("MAXINE_CACERT"))
    .addOption(new Option("--cert <path>", "PEM client certificate, for servers that ask for one (mTLS; with --key)").env("MAXINE_CERT"))
    .addOption(new Option("--key <path>", "PEM private key of --cert").env("MAXINE_KEY"))
    .addHelpText(
      "after",
      "\nExit codes: 0 ok, 1 error (the server refused or is unreachable), 2 usage, 3 not found.\nColors only on a terminal, never with NO_COLOR set.\nTLS: give https:// servers (with --cacert for a private CA); a server with authentication needs --token-file (or --token, MAXINE_TOKEN).",
    )
    .showHelpAfterError("Usage: maxine [options] [command]\n(run maxine --help for more)")
    .exitOverride();
  p.command("services")
    .description("list the services of the namespace, with their instances counted by status")
    .action(() => run((g, out) => services(connect(g), g, out)));
  p.command("instances")
    .description("list a service's instances")
    .argument("<service>", "service name")
    .action((service: string) => run((g, out) => instances(connect(g), g, out, service)));
  p.command("discover")
    .description("ask the server to choose a SERVING instance, as a client would")
    .argument("<service>", "service name")
    .addOption(new Option("--strategy <name>", "how to choose").choices(Object.keys(STRATEGIES)).default("round-robin"))
    .option("--hash-key <key>", "key for consistent-hash and rendezvous")
    .option("--prefer-zone <zone>", "prefer SERVING instances of this zone when there are any")
    .option("--tag <tag>", "only instances with this tag (repeat for several)", collect, [] as string[])
    .option("--version <version>", "only instances of this version")
    .option("--zone <zone>", "only instances of this zone")
    .option("--metadata <key=value>", "only instances with this metadata (repeat for several)", keyValue, {} as Record<string, string>)
    .option("--all", "also list every matching instance (the chosen one marked *)")
    .action((service: string, o) => run((g, out) => discover(connect(g), g, out, service, o)));
  p.command("watch")
    .description("follow services live (all of the namespace when none is named): a table on a terminal, one JSON object per change otherwise")
    .argument("[services...]", "service names")
    .action((list: string[]) => run((g, out) => watch(connect(g), g, out, list)));
  p.command("register")
    .description("register an instance and keep it alive on a heartbeat stream until Ctrl-C, then deregister it")
    .argument("<service>", "service name")
    .requiredOption("--id <id>", "instance id")
    .requiredOption("--host <host>", "address clients connect to")
    .requiredOption("--port <port>", "port clients connect to", intIn(1, 65535))
    .option("--zone <zone>", "zone (for --prefer-zone)")
    .option("--version <version>", "version")
    .option("--tag <tag>", "tag (repeat for several)", collect, [] as string[])
    .option("--metadata <key=value>", "metadata entry (repeat for several)", keyValue, {} as Record<string, string>)
    .option("--weight <weight>", "share for the weighted strategy, 1..10000 (server default 100)", intIn(1, 10000))
    .addOption(new Option("--status <status>", "status to register with").choices(["serving", "draining", "not-serving"]).default("serving"))
    .option("--ttl <duration>", "lease TTL, e.g. 10s (server default when unset)", duration)
    .option("--load <load>", "load to report on every heartbeat (a number >= 0, lower is less loaded; for least-loaded)", load)
    .action((service: string, o) => run((g, out) => register(connect(g), g, out, service, o)));
  p.command("deregister")
    .description("remove an instance at once")
    .argument("<service>", "service name")
    .argument("<id>", "instance id")
    .action((service: string, id: string) => run((g, out) => deregister(connect(g), g, out, service, id)));
  p.command("drain")
    .description("set an operator's override: the instance is DRAINING (not chosen by discover) whatever its heartbeats report, until undrain; needs admin")
    .argument("<service>", "service name")
    .argument("<id>", "instance id")
    .option("--disable", "take it out of service instead (NOT_SERVING)")
    .action((service: string, id: string, o) => run((g, out) => drain(connect(g), g, out, service, id, o)));
  p.command("undrain")
    .description("clear an operator's override: the instance's status is again what its heartbeats report")
    .argument("<service>", "service name")
    .argument("<id>", "instance id")
    .action((service: string, id: string) => run((g, out) => undrain(connect(g), g, out, service, id)));
  p.command("health")
    .description("ask each server's grpc.health.v1 about the server and the registry service (exit 1 unless all SERVING)")
    .action(() => run((g, out) => health(connect(g), g, out)));
  const config = p.command("config").description("read, write (with compare-and-set), diff, roll back and follow service configuration");
  config
    .command("get")
    .description("print a key's value (the latest, or --version); -o json prints the entry, value in base64")
    .argument("<service>", "service name")
    .argument("<key>", "key")
    .option("--version <n>", "a kept version instead of the latest", versionArg)
    .action((service: string, key: string, o) => run((g, out) => configGet(connect(g), g, out, service, key, o)));
  config
    .command("put")
    .description("write a key's value as a new version")
    .argument("<service>", "service name")
    .argument("<key>", "key")
    .argument("[value]", "the value (or --file)")
    .option("--file <path>", "read the value from a file (- for standard input)")
    .option("--content-type <type>", "content type, e.g. application/json (default application/octet-stream)")
    .option("--expect-version <n>", "write only if the key is at this version (0: only if it does not exist)", expectArg)
    .action((service: string, key: string, value: string | undefined, o) => run((g, out) => configPut(connect(g), g, out, service, key, value, o)));
  config
    .command("delete")
    .description("delete a key (its history is kept)")
    .argument("<service>", "service name")
    .argument("<key>", "key")
    .option("--expect-version <n>", "delete only if the key is at this version", expectArg)
    .action((service: string, key: string, o) => run((g, out) => configDelete(connect(g), g, out, service, key, o)));
  config
    .command("list")
    .description("list a service's keys with their latest versions")
    .argument("<service>", "service name")
    .action((service: string) => run((g, out) => configList(connect(g), g, out, service)));
  config
    .command("history")
    .description("list a key's kept versions, newest first")
    .argument("<service>", "service name")
    .argument("<key>", "key")
    .option("--limit <n>", "at most this many versions", intIn(1, 1_000_000))
    .action((service: string, key: string, o) => run((g, out) => configHistory(connect(g), g, out, service, key, o)));
  config
    .command("diff")
    .description("show a version (default: the latest) against the version before it, line by line")
    .argument("<service>", "service name")
    .argument("<key>", "key")
    .option("--version <n>", "the version to compare with its predecessor", versionArg)
    .action((service: string, key: string, o) => run((g, out) => configDiff(connect(g), g, out, service, key, o)));
  config
    .command("rollback")
    .description("write an older version's content again, as a new version")
    .argument("<service>", "service name")
    .argument("<key>", "key")
    .argument("<version>", "the kept version to roll back to", versionArg)
    .option("--expect-version <n>", "roll back only if the key is at this version", expectArg)
    .action((service: string, key: string, version: bigint, o) => run((g, out) => configRollback(connect(g), g, out, service, key, version, o)));
  config
    .command("watch")
    .description("follow a service's configuration (or one key) until Ctrl-C: the current values, then one line per change")
    .argument("<service>", "service name")
    .argument("[key]", "only this key")
    .action((service: string, key: string | undefined) => run((g, out) => configWatch(connect(g), g, out, service, key)));
  for (const c of config.commands) c.exitOverride().showHelpAfterError(`Usage: maxine config ${c.name()} ${c.usage()}\n(run maxine config ${c.name()} --help for more)`);
  // A usage error prints what commander found wrong, then the command's usage line.
  for (const c of p.commands) c.exitOverride().showHelpAfterError(`Usage: maxine ${c.name()} ${c.usage()}\n(run maxine ${c.name()} --help for more)`);
  return p;
}

/** globalsOf reads the global options: flags, then environment variables (MAXINE_ADDR, MAXINE_NAMESPACE, MAXINE_OUTPUT, MAXINE_TOKEN, ...), then defaults. */
function globalsOf(p: Command): GlobalOptions {
  const o = p.opts<{ server: string[]; namespace: string; output?: "table" | "json"; token?: string; tokenFile?: string; cacert?: string; cert?: string; key?: string }>();
  const given = o.server.length > 0 ? o.server : (process.env.MAXINE_ADDR ?? "").split(",");
  const server = serversOf(given);
  return { server, namespace: o.namespace, output: o.output, credentials: credentialsOf(o, server) };
}

async function main(argv: string[]): Promise<number> {
  let code: number = ExitCode.OK;
  const p = program(async (f) => {
    const g = globalsOf(p);
    code = await f(g, new Output(g.output));
  });
  try {
    await p.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and --version exit 0; everything else commander refuses is a usage error (it printed why)
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    const f = failure(err);
    process.stderr.write(`maxine: ${f.message}\n`);
    return f.exitCode;
  }
  return code;
}

process.exit(await main(process.argv));
