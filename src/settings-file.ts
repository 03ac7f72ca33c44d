/**
 * The settings file (`--settings <path>`, `--env-file <path>`, `.env`): `NAME=value` lines as systemd's
 * `EnvironmentFile=` and `.env` files write them. Unlike Node's own `parseEnv`, a line that is not a setting
 * is an error that names the file and the line, never skipped: a person who wrote it meant something by it.
 * Errors never quote the line: it may hold a secret.
 *
 * - blank lines and lines starting with `#` are ignored; `export NAME=value` is taken as `NAME=value`;
 * - unquoted values run to the end of the line or to a ` #` comment, trimmed;
 * - `'…'` is literal; `"…"` knows `\n`, `\t`, `\"`, `\\` and `\$`; both may span lines, and must be closed.
 */

export class SettingsFileError extends Error {
  override name = 'SettingsFileError';
  readonly path: string;
  readonly line: number;
  readonly problem: string;
  constructor(path: string, line: number, problem: string) {
    super(`${path}, line ${line}: ${problem}`);
    this.path = path;
    this.line = line;
    this.problem = problem;
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\', $: '$' };

/** The settings a file holds, in order; throws SettingsFileError at the first line that is not one. */
export function parseSettingsFile(text: string, path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new SettingsFileError(path, lineNo, 'not a setting (expected NAME=value)');
    const name = line
      .slice(0, eq)
      .trim()
      .replace(/^export\s+/, '');
    if (!NAME.test(name))
      throw new SettingsFileError(path, lineNo, 'what comes before = is not a variable name');
    let rest = line.slice(eq + 1).trimStart();
    const quote = rest[0];
    if (quote !== '"' && quote !== "'") {
      out[name] = rest.replace(/(^|\s)#.*$/, '').trim();
      continue;
    }
    // A quoted value: read on, across lines if need be, to its closing quote.
    let value = '';
    let j = 1;
    const start = lineNo;
    for (;;) {
      if (j >= rest.length) {
        if (i + 1 >= lines.length)
          throw new SettingsFileError(
            path,
            start,
            `the value of ${name} opens a ${quote} quote that is never closed`,
          );
        value += '\n';
        rest = lines[++i]!;
        j = 0;
        continue;
      }
      const ch = rest[j]!;
      if (ch === quote) break;
      if (quote === '"' && ch === '\\' && j + 1 < rest.length) {
        const next = rest[j + 1]!;
        value += ESCAPES[next] ?? `\\${next}`;
        j += 2;
        continue;
      }
      value += ch;
      j++;
    }
    const after = rest.slice(j + 1).trim();
    if (after !== '' && !after.startsWith('#'))
      throw new SettingsFileError(path, i + 1, `text after the closing quote of ${name}`);
    out[name] = value;
  }
  return out;
}
