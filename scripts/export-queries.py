#!/usr/bin/env python3
"""Runs the Athena queries docs/analytics.md documents, unchanged, on a local export in
DuckDB and compares their answers with what export_sample computed exactly.

    export-queries.py EXPORT_DIR EXPECTED_JSON

The export's folders become the table `events` (the Glue table's name; its `date`
partition from the folder names, as Athena's partition projection gives it). DuckDB
names Athena's approx_percentile approx_quantile: a macro maps the one to the other.
Counts must match exactly; percentiles within 5 % (both engines approximate them).
"""
import json
import os
import re
import sys

import duckdb

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "analytics.md")


def documented_queries():
    """Each ```sql block of the doc that starts with `-- name: NAME`."""
    text = open(DOC, encoding="utf-8").read()
    queries = {}
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        first, _, _ = block.partition("\n")
        name = re.fullmatch(r"-- name: (\w+)", first.strip())
        if name:
            queries[name.group(1)] = block
    return queries


def rows(con, sql):
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def near(got, want, tolerance):
    return abs(got - want) <= tolerance * abs(want)


def main(export_dir, expected_path):
    expected = json.load(open(expected_path, encoding="utf-8"))
    queries = documented_queries()
    assert set(queries) == set(expected), f"documented {sorted(queries)}, expected {sorted(expected)}"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = os.path.join(export_dir, "events", "*", "*.parquet")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
    con.execute("CREATE MACRO approx_percentile(x, p) AS approx_quantile(x, p)")
    failures = 0

    got = rows(con, queries["failure_rate_per_school_per_day"])
    want = expected["failure_rate_per_school_per_day"]
    got_keyed = {(r["school_id"], str(r["day"])): r for r in got}
    for w in want:
        g = got_keyed.get((w["school_id"], w["day"]))
        ok = g is not None and (g["syncs"], g["failures"]) == (w["syncs"], w["failures"]) and near(
            g["failure_rate"], w["failure_rate"], 1e-9
        )
        if not ok:
            failures += 1
            print(f"failure_rate_per_school_per_day {w['school_id']} {w['day']}: got {g}, want {w}")
    if len(got) != len(want):
        failures += 1
        print(f"failure_rate_per_school_per_day: {len(got)} rows, want {len(want)}")
    order = [(r["school_id"] is None, r["school_id"] or "", str(r["day"])) for r in got]
    if order != sorted(order):
        failures += 1
        print("failure_rate_per_school_per_day: rows not by school, then day")

    got = {r["school_id"]: r for r in rows(con, queries["speed_per_school"])}
    for w in expected["speed_per_school"]:
        g = got.get(w["school_id"])
        ok = g is not None and g["syncs"] == w["syncs"] and near(g["p50"], w["p50"], 0.05) and near(g["p90"], w["p90"], 0.05)
        if not ok:
            failures += 1
            print(f"speed_per_school {w['school_id']}: got {g}, want {w}")
    checked = len(want) + len(expected["speed_per_school"])
    print(f"export queries: {checked - failures} rows as expected, {failures} not")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
