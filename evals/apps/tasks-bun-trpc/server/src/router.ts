import { initTRPC } from '@trpc/server';
import superjson from 'superjson';
import { z } from 'zod';
import * as tasks from './handlers/tasks';

const t = initTRPC.create({ transformer: superjson });
const publicProcedure = t.procedure;

export const appRouter = t.router({
  healthcheck: publicProcedure.query(() => ({ status: 'ok' })),
  listProjects: publicProcedure.query(() => tasks.listProjects()),
  listTasks: publicProcedure.query(() => tasks.listTasks()),
  taskStats: publicProcedure.query(() => tasks.taskStats()),
  tasksOfProject: publicProcedure
    .input(z.object({ projectId: z.number() }))
    .query(({ input }) => tasks.tasksOfProject(input.projectId)),
  createProject: publicProcedure
    .input(z.object({ name: z.string().min(1) }))
    .mutation(({ input }) => tasks.createProject(input.name)),
  createTask: publicProcedure
    .input(z.object({ projectId: z.number(), title: z.string().min(1) }))
    .mutation(({ input }) => tasks.createTask(input)),
  completeTask: publicProcedure
    .input(z.object({ id: z.number() }))
    .mutation(({ input }) => tasks.completeTask(input.id)),
});

export type AppRouter = typeof appRouter;
