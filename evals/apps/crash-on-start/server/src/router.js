import { publicProcedure, router } from './trpc.js';

export function failedRuns(runs) {
  return runs.filter((r) => r.state === 'FAILED').sort((a, b) => b.run_id - a.run_id);
}

export function createRouter(db) {
  return router({
    getPipelineRuns: publicProcedure.query(() => db.jobRuns()),
    getFailedJobs: publicProcedure.query(() => failedRuns(db.jobRuns())),
  });
}
