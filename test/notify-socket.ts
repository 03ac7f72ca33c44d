/** A stand-in for systemd's notify socket: a Unix datagram socket that records every message with its time. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { tempDir, waitFor } from './helpers.js';

const SCRIPT = `
import array, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("LISTENING", flush=True)
while True:
    data, ancdata, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
    # File descriptors passed along (systemd-notify's barrier) are closed, so the sender's wait returns.
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
            for fd in fds:
                os.close(fd)
    print("%.3f %s" % (time.time(), data.decode().replace("\\n", " | ")), flush=True)
`;

export const canNotify = await new Promise<boolean>((resolve) =>
  spawn('sh', ['-c', 'command -v python3 && command -v systemd-notify']).on('exit', (code) =>
    resolve(code === 0),
  ),
);

export interface NotifyListener {
  child: ChildProcess;
  /** Every message so far, as `<epoch seconds> <assignments>`. */
  lines(): string[];
  /** Epoch ms of each message that carries `assignment` (e.g. WATCHDOG=1). */
  times(assignment: string): number[];
}

/**
 * A listener on a new socket in a directory of its own, once it listens; `path` is the NOTIFY_SOCKET to give.
 * The caller kills `child` when done.
 */
export async function listeningSocket(): Promise<NotifyListener & { path: string }> {
  const path = join(tempDir(), 'notify.sock');
  const listener = notifySocket(path);
  try {
    await waitFor(() => listener.lines().includes('LISTENING'), { what: 'the notify socket listening' });
  } catch (err) {
    listener.child.kill();
    throw err;
  }
  return { ...listener, path };
}

export function notifySocket(path: string): NotifyListener {
  const child = spawn('python3', ['-c', SCRIPT, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const lines = () => out.split('\n').filter(Boolean);
  return {
    child,
    lines,
    times: (assignment) =>
      lines()
        .filter((l) => l.split(/[ |]+/).includes(assignment))
        .map((l) => Math.round(Number(l.split(' ')[0]) * 1000)),
  };
}
