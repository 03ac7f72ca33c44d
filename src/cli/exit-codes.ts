/**
 * Every command's exit statuses, one rule (CONTRACT §1): the same number means the same thing whichever
 * command returns it, and `--help` and the README list them from here.
 */
export const EXIT_OK = 0;
/** Something failed at run time (`status`: degraded; `doctor`: a check failed; a request answered `failed`). */
export const EXIT_FAILED = 1;
/** A usage error, or no database where one must exist (never created by a command that only reads). */
export const EXIT_NO_DATABASE = 2;
export const EXIT_USAGE = 2;
/** `command`/`current`: refused before sending (commands off, unnecessary, superseded). */
export const EXIT_REFUSED = 3;
/** An unknown charger or installation, or a refresh answered `not_found`. */
export const EXIT_NOT_FOUND = 4;
/** `--wait` ran out before an answer. */
export const EXIT_WAIT_TIMEOUT = 5;
/** `command`/`current`: rejected or failed by Zaptec. */
export const EXIT_REJECTED = 6;
/** `run`: another live daemon owns the database (EX_TEMPFAIL). */
export const EXIT_OWNED = 75;
/** A bad setting, an unsupported Node.js, or a fault a person must fix (EX_CONFIG: systemd does not restart). */
export const EXIT_CONFIG = 78;

export const EXIT_CODES_HELP = `exit status (every command):
  0   success (status: healthy; refresh: handled, queued or deferred)
  1   failure at run time (status: degraded; doctor: a check failed; refresh: failed)
  2   usage error, or no database (status: also when the daemon never ran)
  3   command/current refused before sending
  4   unknown charger or installation (refresh: not_found)
  5   --wait timed out
  6   command/current rejected or failed by Zaptec
  75  run: another daemon owns the database
  78  bad configuration, unsupported Node.js, or a fault a person must fix (read-only database directory,
      a database newer than this program, the metrics port taken)`;
