/**
 * Looking at processes through /proc (Linux), for the local stack and the tests that check that
 * nothing was left running.
 */

/** Alive = exists and is not a zombie (a zombie has exited; its parent just has not reaped it). */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Field 3, after the parenthesised command name, is the state.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The direct children of `pid`. */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) kids.push(Number(entry.name));
    } catch {
      // gone while scanning
    }
  }
  return kids;
}

export function processCommandLine(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}
