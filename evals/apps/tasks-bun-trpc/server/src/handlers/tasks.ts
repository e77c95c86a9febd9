import { count, eq } from 'drizzle-orm';
import { db } from '../db';
import { projects, tasks } from '../db/schema';

export type NewTask = { projectId: number; title: string };

export const listProjects = () => db.select().from(projects).orderBy(projects.id);

export const listTasks = () => db.select().from(tasks).orderBy(tasks.id);

export const tasksOfProject = (projectId: number) =>
  db.select().from(tasks).where(eq(tasks.projectId, projectId));

export async function createProject(name: string) {
  const [row] = await db.insert(projects).values({ name }).returning();
  return row!;
}

export async function createTask(input: NewTask) {
  const [row] = await db.insert(tasks).values(input).returning();
  return row!;
}

export async function completeTask(id: number) {
  const [row] = await db.update(tasks).set({ done: true }).where(eq(tasks.id, id)).returning();
  return row ?? null;
}

export async function taskStats() {
  const [all] = await db.select({ n: count() }).from(tasks);
  const [done] = await db.select({ n: count() }).from(tasks).where(eq(tasks.done, true));
  return { total: all?.n ?? 0, done: done?.n ?? 0 };
}
