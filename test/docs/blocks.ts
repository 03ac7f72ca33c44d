/** The code blocks of docs/CONSUMERS.md, by their language tag: the tests run each of them. */
import { readFileSync } from 'node:fs';

const doc = readFileSync(new URL('../../docs/CONSUMERS.md', import.meta.url), 'utf8');

export function consumerBlocks(lang: string): string[] {
  return [...doc.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!);
}
