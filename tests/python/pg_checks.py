"""psycopg 3 through a Gatehouse PostgreSQL connection.

Run by tests/tests/postgres_proxy.rs with PGHOST, PGPORT, PGDATABASE and
PGPASSWORD (the Gatehouse credential) set. Prints one JSON object with what
it saw; the Rust test asserts on it.
"""

import json

import psycopg
from psycopg import errors

seen = {}
with psycopg.connect(user="agent", sslmode="disable", autocommit=True) as conn:
    seen["server_user"] = conn.execute("SELECT current_user").fetchone()[0]

    # Text and binary results, server-side parameters (extended protocol).
    seen["text"] = conn.execute(
        "SELECT email, card FROM customers WHERE id = %s", (1,)
    ).fetchone()
    with conn.cursor(binary=True) as cur:
        seen["binary"] = cur.execute(
            "SELECT email, card FROM customers WHERE id = %s", (1,)
        ).fetchone()

    # A denied statement raises the 42501 class; the connection stays usable.
    try:
        conn.execute("DROP TABLE customers")
        seen["drop"] = "ran"
    except errors.InsufficientPrivilege as e:
        seen["drop"] = {"sqlstate": e.diag.sqlstate, "message": e.diag.message_primary,
                        "detail": e.diag.message_detail}
    seen["after_drop"] = conn.execute("SELECT count(*) FROM customers").fetchone()[0]

    # Pipeline mode: several statements in flight, one refused among them.
    results = []
    try:
        with conn.pipeline():
            c1 = conn.execute("SELECT name FROM customers WHERE id = %s", (1,))
            c2 = conn.execute("SELECT v FROM secrets")
            c3 = conn.execute("SELECT name FROM customers WHERE id = %s", (2,))
    except errors.InsufficientPrivilege as e:
        results.append(e.diag.sqlstate)
    results.append(c1.fetchone()[0])
    seen["pipeline"] = results
    seen["after_pipeline"] = conn.execute("SELECT 'ok'").fetchone()[0]

    # COPY both ways.
    with conn.cursor() as cur:
        with cur.copy("COPY customers (id, name, email) FROM STDIN") as copy:
            for i in range(100, 200):
                copy.write_row((i, f"user{i}", f"user{i}@example.com"))
        # Column masks cannot follow COPY's nameless rows: refused, not leaked.
        try:
            with cur.copy("COPY (SELECT email FROM customers WHERE id = 150) TO STDOUT") as copy:
                seen["copy_out"] = [row[0] for row in copy.rows()]
        except errors.FeatureNotSupported as e:
            seen["copy_out"] = {"sqlstate": e.diag.sqlstate, "message": e.diag.message_primary}
    seen["count"] = conn.execute("SELECT count(*) FROM customers").fetchone()[0]

print(json.dumps(seen))
