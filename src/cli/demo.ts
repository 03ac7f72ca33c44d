/** `demo`: not built yet (see the open issues). */
export async function demoCommand(_args: string[], _envFile: string | undefined): Promise<number> {
  process.stderr.write('zaptec-sync demo: not available in this version yet\n');
  return 1;
}
