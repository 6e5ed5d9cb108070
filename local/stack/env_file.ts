/**
 * A `.env` reader for the local scripts, in the dotenv dialect that `supabase functions serve
 * --env-file` also accepts: `KEY=value` lines, blank lines and `#` comments, an optional
 * `export ` prefix, single quotes (literal), double quotes (`\n`, `\t`, `\"`, `\\` escapes, may
 * span lines), and ` #` comments after an unquoted value.
 */

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class EnvFileError extends SyntaxError {
  constructor(readonly line: number, readonly reason: string, file?: string) {
    super(`${file === undefined ? "" : `${file}: `}line ${line}: ${reason}`);
    this.name = "EnvFileError";
  }
}

export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const body = line.replace(/^export\s+/, "");
    const eq = body.indexOf("=");
    if (eq < 0) throw new EnvFileError(lineNo, "expected KEY=value");
    const key = body.slice(0, eq).trim();
    if (!KEY.test(key)) throw new EnvFileError(lineNo, `invalid name ${JSON.stringify(key)}`);
    let rest = body.slice(eq + 1).trimStart();
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may continue on the following lines until its closing quote.
      let value = rest.slice(1);
      let close = findClosingQuote(value, quote);
      while (close < 0 && i + 1 < lines.length) {
        i++;
        value += "\n" + lines[i]!;
        close = findClosingQuote(value, quote);
      }
      if (close < 0) throw new EnvFileError(lineNo, `unterminated ${quote} quote`);
      const after = value.slice(close + 1).trim();
      if (after !== "" && !after.startsWith("#")) {
        throw new EnvFileError(lineNo, "unexpected text after the closing quote");
      }
      value = value.slice(0, close);
      env[key] = quote === '"' ? unescapeDouble(value) : value;
      continue;
    }
    const comment = rest.search(/\s#/);
    if (comment >= 0) rest = rest.slice(0, comment);
    env[key] = rest.trim();
  }
  return env;
}

function findClosingQuote(value: string, quote: string): number {
  for (let i = 0; i < value.length; i++) {
    if (quote === '"' && value[i] === "\\") {
      i++;
      continue;
    }
    if (value[i] === quote) return i;
  }
  return -1;
}

function unescapeDouble(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => {
    switch (c) {
      case "n":
        return "\n";
      case "r":
        return "\r";
      case "t":
        return "\t";
      default:
        return c;
    }
  });
}

/** Reads and parses `path`; a missing file is an empty environment unless `required`. */
export async function readEnvFile(
  path: string | URL,
  options: { required?: boolean } = {},
): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !options.required) return {};
    throw error;
  }
  try {
    return parseEnvFile(text);
  } catch (error) {
    if (error instanceof EnvFileError) {
      throw new EnvFileError(error.line, error.reason, String(path));
    }
    throw error;
  }
}
