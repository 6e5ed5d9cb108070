/**
 * Where `npm start` keeps its PostgreSQL cluster. Normally `<data dir>/postgres`, next to
 * stack.json. As root the cluster runs as the unprivileged `postgres` OS user, which cannot enter
 * a checkout under a private folder (/root, or any mode-0700 parent): then the cluster lives in
 * a folder of its own under /var/tmp, private to that user, one per data dir, kept across reboots
 * like the default location. The choice is recorded in stack.json and shown at start.
 */

/** Base of the fallback folders: world-writable and sticky, so any user can own a folder in it. */
export const FALLBACK_BASE = "/var/tmp";

export interface LocationFacts {
  /** `<data dir>/postgres`. */
  preferred: string;
  /** The folder used when the preferred one cannot be reached. */
  fallback: string;
  /** The cluster runs as another OS user (we are root; it runs as `postgres`). */
  runsAsOtherUser: boolean;
  /** That user can enter the data dir (and so create and use the cluster's folder in it). */
  reachable: boolean;
  preferredHasCluster: boolean;
  fallbackHasCluster: boolean;
}

export interface Location {
  dir: string;
  /** Why this folder, in words for the start-up banner; null for the usual place. */
  note: string | null;
}

/**
 * The cluster's folder. An existing cluster stays where it is, so that a changed permission
 * never silently starts an empty database elsewhere.
 */
export function chooseClusterDir(facts: LocationFacts): Location {
  if (facts.preferredHasCluster || !facts.runsAsOtherUser) {
    return { dir: facts.preferred, note: null };
  }
  if (facts.fallbackHasCluster) {
    return {
      dir: facts.fallback,
      note: "kept outside the checkout, where an earlier start put it",
    };
  }
  if (facts.reachable) return { dir: facts.preferred, note: null };
  return {
    dir: facts.fallback,
    note: "outside the checkout: the postgres OS user cannot enter a folder above it",
  };
}

/** `/var/tmp/cafe24-connector-<12 hex of the data dir's path>/postgres`: stable per data dir. */
export async function fallbackClusterDir(dataDir: string, base = FALLBACK_BASE): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(dataDir));
  const key = Array.from(new Uint8Array(digest).slice(0, 6))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${base}/cafe24-connector-${key}/postgres`;
}

/**
 * Creates (or checks) the fallback cluster folder's parent: a real directory, owned by root or
 * the cluster's user, writable by nobody else, then handed to that user with mode 0700. A folder
 * someone else prepared under the shared /var/tmp (or a symlink) is refused, never used.
 */
export async function prepareFallbackParent(
  clusterDir: string,
  owner: { uid: number; gid: number },
): Promise<void> {
  const parent = clusterDir.replace(/\/[^/]+\/?$/, "");
  try {
    await Deno.mkdir(parent, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = await Deno.lstat(parent);
  const ownerOk = info.uid === 0 || info.uid === owner.uid || info.uid === Deno.uid();
  if (!info.isDirectory || info.isSymlink || !ownerOk || ((info.mode ?? 0) & 0o022) !== 0) {
    throw new Error(
      `${parent} exists but is not a private folder of root or the postgres user; ` +
        `remove it, or pass --data-dir with a folder the postgres user can enter`,
    );
  }
  if (Deno.uid() === 0) await Deno.chown(parent, owner.uid, owner.gid);
  await Deno.chmod(parent, 0o700);
}

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return { code: out.code, stdout: new TextDecoder().decode(out.stdout).trim() };
  } catch {
    return { code: 127, stdout: "" };
  }
}

async function hasCluster(dir: string): Promise<boolean> {
  return await Deno.stat(`${dir}/PG_VERSION`).then(() => true, () => false);
}

/** Gathers the facts for `dataDir` on this machine and decides. Creates nothing. */
export async function locateCluster(dataDir: string): Promise<Location> {
  const preferred = `${dataDir}/postgres`;
  const fallback = await fallbackClusterDir(dataDir);
  const runsAsOtherUser = Deno.uid() === 0;
  // `test -x` as the postgres user: it must pass through every parent to get into the data dir.
  const reachable = !runsAsOtherUser ||
    (await run("runuser", ["-u", "postgres", "--", "test", "-x", dataDir])).code === 0;
  return chooseClusterDir({
    preferred,
    fallback,
    runsAsOtherUser,
    reachable,
    preferredHasCluster: await hasCluster(preferred),
    fallbackHasCluster: await hasCluster(fallback),
  });
}

/**
 * `--reset`: removes the cluster in `<data dir>/postgres` and the fallback folder under /var/tmp
 * (the whole `cafe24-connector-<key>` folder, never a symlink). Returns what it removed.
 */
export async function removeClusterData(dataDir: string, fallbackDir: string): Promise<string[]> {
  const removed: string[] = [];
  const remove = async (path: string) => {
    try {
      const info = await Deno.lstat(path);
      await Deno.remove(path, { recursive: info.isDirectory && !info.isSymlink });
      removed.push(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  await remove(`${dataDir}/postgres`);
  await remove(fallbackDir.replace(/\/postgres\/?$/, ""));
  return removed;
}

/** Kilobytes under `path` (du -sk), or null when du cannot tell. */
export async function diskUsageKb(path: string): Promise<number | null> {
  const out = await run("du", ["-sk", path]);
  const kb = Number(out.stdout.split(/\s/)[0]);
  return out.code === 0 && Number.isFinite(kb) ? kb : null;
}

/** The postgres OS user's ids (the cluster runs as it when we are root). */
export async function postgresUser(): Promise<{ uid: number; gid: number } | null> {
  const uid = await run("id", ["-u", "postgres"]);
  const gid = await run("id", ["-g", "postgres"]);
  if (uid.code !== 0 || gid.code !== 0) return null;
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}
