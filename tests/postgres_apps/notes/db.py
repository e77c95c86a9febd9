"""What both the server and the test script need: the URL they were given, and psql."""

import os
import subprocess
import sys

URL = os.environ["APP_DATABASE_URL"]
if not URL == os.environ["DATABASE_URL"] == os.environ["NOTES_DB_URL"]:
    sys.exit("APP_DATABASE_URL, DATABASE_URL and NOTES_DB_URL differ")


def psql(sql: str) -> str:
    done = subprocess.run(
        ["psql", URL, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def require_empty_database() -> str:
    """The database's name; exits when it already holds a table (another app's?)."""
    tables = psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    if tables != "0":
        sys.exit(f"the database is not empty: {tables} tables")
    return psql("SELECT current_database()")
