import { createProject, createTask } from './handlers/tasks';
import { pool } from './db';

const home = await createProject('Home');
const work = await createProject('Work');
await createTask({ projectId: home.id, title: 'Water the plants' });
await createTask({ projectId: work.id, title: 'Write the quarterly report' });
await pool.end();
console.log('seeded 2 projects, 2 tasks');
