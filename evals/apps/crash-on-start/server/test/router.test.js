import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRouter, failedRuns } from '../src/router.js';
import { callProcedure } from '../src/trpc.js';

const runs = [
  { run_id: 1, job: 'a', state: 'SUCCESS' },
  { run_id: 2, job: 'b', state: 'FAILED' },
  { run_id: 3, job: 'c', state: 'FAILED' },
];

test('failedRuns keeps failures, newest first', () => {
  assert.deepEqual(failedRuns(runs).map((r) => r.run_id), [3, 2]);
});

test('getPipelineRuns returns every run from the db', async () => {
  const appRouter = createRouter({ jobRuns: () => runs });
  assert.equal((await callProcedure(appRouter, 'getPipelineRuns', 'query')).length, 3);
});
