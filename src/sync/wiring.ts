/** Builds the daemon's components from the configuration (the one place that knows them all). */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Db } from '../store/database.js';
import type { Clock } from '../time.js';
import type { Component } from './daemon.js';

export interface WiringDeps {
  config: Config;
  db: Db;
  log: Logger;
  clock: Clock;
  version: string;
}

export interface Wired {
  components: Component[];
  requestInventory(): void;
}

export function buildComponents(_deps: WiringDeps): Wired {
  return { components: [], requestInventory: () => {} };
}
