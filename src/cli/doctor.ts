/** `doctor`: not built yet (see the open issues). */
export async function doctorCommand(_args: string[], _envFile: string | undefined): Promise<number> {
  process.stderr.write('zaptec-sync doctor: not available in this version yet\n');
  return 1;
}
