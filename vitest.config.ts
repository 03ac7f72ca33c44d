import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The simulated month runs for minutes in one worker: started first, it runs beside the other files
 * instead of alone at the end (vitest would otherwise start the largest files first, and it is small).
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const long = (f: TestSpecification) => f.moduleId.includes('/test/simulation/');
    return [...sorted.filter(long), ...sorted.filter((f) => !long(f))];
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/soak/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most files wait on real time (CLI processes, loopback I/O, a real broker), not on the CPU: two at once
    // on a 2-core machine take the suite from about 17 to 9 minutes (vitest's default is one fewer than the cores).
    maxWorkers: 2,
    globalSetup: ['test/postgres-setup.ts'],
    sequence: { sequencer: LongestFirst },
  },
});
