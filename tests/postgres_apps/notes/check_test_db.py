"""The test stage: its database must be another one than the server's, and empty."""

import os
import sys

from db import psql, require_empty_database

name = require_empty_database()  # the server created a table in its own database
if not name.endswith("_test") or os.environ.get("PGDATABASE") != name:
    sys.exit(f"unexpected test database {name!r} (PGDATABASE={os.environ.get('PGDATABASE')})")
psql("CREATE TABLE scratch (x int)")  # it is writable
print("test database:", name)
databases = "SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'klaud%'"
print("klaud databases:", psql(databases))
print("data directory:", psql("SHOW data_directory"))
