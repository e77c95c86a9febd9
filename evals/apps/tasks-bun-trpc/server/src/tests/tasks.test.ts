import { afterAll, beforeEach, describe, expect, test } from 'bun:test';
import { pool } from '../db';
import { completeTask, createProject, createTask, listTasks, taskStats } from '../handlers/tasks';
import { resetDatabase } from './db';

beforeEach(resetDatabase);
afterAll(() => pool.end());

describe('tasks', () => {
  test('a new task is open and listed', async () => {
    const project = await createProject('Garden');
    const task = await createTask({ projectId: project.id, title: 'Mow the lawn' });
    expect(task.done).toBe(false);
    expect((await listTasks()).map((t) => t.title)).toEqual(['Mow the lawn']);
  });

  test('completing a task counts it as done', async () => {
    const project = await createProject('Garden');
    const task = await createTask({ projectId: project.id, title: 'Rake leaves' });
    await completeTask(task.id);
    expect(await taskStats()).toEqual({ total: 1, done: 1 });
  });

  test('completing a missing task changes nothing', async () => {
    expect(await completeTask(404)).toBeNull();
    expect(await taskStats()).toEqual({ total: 0, done: 0 });
  });
});
