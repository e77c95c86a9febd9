import { sql } from 'drizzle-orm';
import { db } from '../db';

/** A fresh schema for every test: the tests own their (empty) database. */
export async function resetDatabase() {
  await db.execute(sql`drop schema if exists public cascade`);
  await db.execute(sql`create schema public`);
  await db.execute(sql`create table projects (id serial primary key, name text not null)`);
  await db.execute(sql`create table tasks (
    id serial primary key,
    project_id integer not null references projects(id),
    title text not null,
    done boolean not null default false,
    created_at timestamp not null default now())`);
}
