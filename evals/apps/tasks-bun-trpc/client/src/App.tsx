import { useEffect, useState } from 'react';
import { trpc } from './trpc';

type Task = { id: number; title: string; done: boolean };

export function App() {
  const [tasks, setTasks] = useState<Task[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    trpc.listTasks.query().then(setTasks, (e: Error) => setError(e.message));
  }, []);

  return (
    <main style={{ fontFamily: 'sans-serif', margin: '2rem' }}>
      <h1>Tasks</h1>
      {error && <p role="alert">Could not load tasks: {error}</p>}
      {tasks.length === 0 ? (
        <p>No tasks yet.</p>
      ) : (
        <ul>
          {tasks.map((t) => (
            <li key={t.id}>{t.done ? '✔ ' : ''}{t.title}</li>
          ))}
        </ul>
      )}
    </main>
  );
}
