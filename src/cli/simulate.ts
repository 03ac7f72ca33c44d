/** `simulate`: not built yet (see the open issues). */
export async function simulateCommand(_args: string[], _envFile: string | undefined): Promise<number> {
  process.stderr.write('zaptec-sync simulate: not available in this version yet\n');
  return 1;
}
