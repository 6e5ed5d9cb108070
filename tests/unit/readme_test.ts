/**
 * The README stays a five-minute read and every link in it and in docs/ lands somewhere: the file
 * exists and, for `#anchor` links, a heading of that file has that anchor under GitHub's rules.
 */
import assert from "node:assert/strict";
import { pathExists } from "../../local/files.ts";

const root = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

/** What the README may weigh, in bytes as `wc -c` counts them. */
const README_MAX_BYTES = 15_360;

/** The README's anchors that were there before the detail moved to docs/: each still resolves. */
const KEPT_ANCHORS = [
  "install",
  "two-commands",
  "the-local-stack-npm-start",
  "connect-a-mall-from-an-app",
  "adding-the-connect-button-to-your-app",
  "using-tokens-from-your-code",
  "reading-connection-status-in-the-browser",
  "upgrading-from-the-one-step-connect-flow",
  "connection-events-disconnecting-and-cafe24s-uninstall-notice",
  "events",
  "disconnecting",
  "cafe24s-app-uninstalled-notice",
  "admin-cli-npm-run-refresh",
  "deploy-to-supabase",
  "operate",
  "a-mall-is-reconnect_required",
  "cafe24_client_auth_failed",
  "pg_net-shows-401-unauthorized-for-the-cron-job",
  "capacity",
  "where-things-are",
  "further-reading",
];

/** The text outside fenced code blocks, line by line (fences of ``` or ~~~). */
function proseLines(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | null = null;
  for (const line of markdown.split("\n")) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = null;
      continue;
    }
    if (marker) {
      fence = marker;
      continue;
    }
    lines.push(line);
  }
  return lines;
}

/**
 * GitHub's anchor for a heading: the rendered text lowercased, every character that is not a
 * letter, a digit, a space, a hyphen or an underscore removed, each space turned into a hyphen.
 */
export function headingSlug(heading: string): string {
  const rendered = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1") // a link shows its text
    .replace(/`([^`]*)`/g, "$1")
    .replace(/\*\*|__|\*/g, "")
    .trim();
  return rendered.toLowerCase().replace(/[^\p{L}\p{M}\p{N} _-]/gu, "").replace(/ /g, "-");
}

/** The anchors of a markdown file's headings, duplicates numbered -1, -2… as GitHub does. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const line of proseLines(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = headingSlug(heading);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

/** Every inline link target in the prose (outside code blocks and code spans). */
function linkTargets(markdown: string): string[] {
  const targets: string[] = [];
  for (const line of proseLines(markdown)) {
    const prose = line.replace(/`[^`]*`/g, "``");
    for (const [, target] of prose.matchAll(/\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      targets.push(target!);
    }
  }
  return targets;
}

async function markdownFiles(): Promise<Map<string, string>> {
  const files = new Map([["README.md", await read("README.md")]]);
  for await (const entry of Deno.readDir(new URL("docs/", root))) {
    if (entry.name.endsWith(".md")) {
      files.set(`docs/${entry.name}`, await read(`docs/${entry.name}`));
    }
  }
  return files;
}

Deno.test("headingSlug follows GitHub's rules", () => {
  assert.equal(headingSlug("Admin CLI (`npm run refresh`)"), "admin-cli-npm-run-refresh");
  assert.equal(headingSlug("A mall is `reconnect_required`"), "a-mall-is-reconnect_required");
  assert.equal(headingSlug("Cafe24's app-uninstalled notice"), "cafe24s-app-uninstalled-notice");
  assert.equal(
    headingSlug("The key ring: generate, back up, rotate"),
    "the-key-ring-generate-back-up-rotate",
  );
  assert.equal(headingSlug("웹훅 인증정보 (WebHook)"), "웹훅-인증정보-webhook");
  assert.equal(headingSlug("Events → delivery"), "events--delivery");
  assert.deepEqual([...anchors("# A\n```\n# not a heading\n```\n## A\n## A\n")], [
    "a",
    "a-1",
    "a-2",
  ]);
});

Deno.test(`the README is at most ${README_MAX_BYTES} bytes`, async () => {
  const size = (await Deno.readFile(new URL("README.md", root))).byteLength;
  assert.ok(size <= README_MAX_BYTES, `README.md is ${size} bytes; move detail to docs/`);
});

Deno.test("every link in the README and docs/ resolves, #anchors included", async () => {
  const files = await markdownFiles();
  const headings = new Map<string, Set<string>>();
  const anchorsOf = async (path: string) => {
    if (!headings.has(path)) headings.set(path, anchors(files.get(path) ?? (await read(path))));
    return headings.get(path)!;
  };
  const broken: string[] = [];
  for (const [file, text] of files) {
    const dir = new URL(file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "", root);
    for (const target of linkTargets(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [path, anchor] = target.split("#", 2) as [string, string | undefined];
      const resolved = path === "" ? file : new URL(path, dir).pathname.slice(root.pathname.length);
      if (!(await pathExists(new URL(resolved, root)))) {
        broken.push(`${file}: ${target} (no ${resolved})`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!resolved.endsWith(".md")) {
        broken.push(`${file}: ${target} (an anchor into a file that is not markdown)`);
      } else if (!(await anchorsOf(resolved)).has(decodeURIComponent(anchor))) {
        broken.push(`${file}: ${target} (no heading #${anchor} in ${resolved})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("the README keeps every anchor it had, and indexes every docs/ page", async () => {
  const readme = await read("README.md");
  const own = anchors(readme);
  assert.deepEqual(KEPT_ANCHORS.filter((anchor) => !own.has(anchor)), []);
  const index = readme.slice(readme.indexOf("## Further reading"));
  const pages: string[] = [];
  for await (const entry of Deno.readDir(new URL("docs/", root))) {
    if (entry.name.endsWith(".md")) pages.push(`docs/${entry.name}`);
  }
  assert.deepEqual(pages.filter((page) => !index.includes(`](${page})`)), [], "not in the index");
});
