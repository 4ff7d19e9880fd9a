"""Where a private PostgreSQL cluster's backends spend their CPU, from a `perf` recording (issue 19).

PostgreSQL's CPU per delivered event (bench/real_paths.py) is one number; pg_stat_statements' execution time
covers about half of it and is wall time. This splits sampled CPU by what the backend was doing: executor
(and within it index inserts, index scans, heap writes, parameter input), planner, parse/analyze, foreign-key
triggers, commit, network, autovacuum. Debian's postgres binary keeps its exported symbols only, so static
functions show as [unknown] ("other"); the split goes by the exported frames above them.

    PM=$(head -1 /tmp/pg-NAME/data/postmaster.pid)
    (for i in $(seq 240); do ps --ppid $PM -o pid=; sleep 0.25; done > /tmp/pids.txt) &
    perf record -F 999 -a -g -o /tmp/pg.data -- sleep 60 &
    .venv/bin/python bench/real_paths.py --only emit --latency-seconds 0 --events 8000 --database-url ...
    perf script -i /tmp/pg.data --pid $(sort -u /tmp/pids.txt | tr -d ' ' | paste -sd,) -F pid,ip,sym > /tmp/st.txt
    .venv/bin/python bench/pg_cpu_split.py /tmp/st.txt --aux $(ps --ppid $PM -o pid= | paste -sd,)

``--aux``: the cluster's own processes (checkpointer, walwriter, ...), counted apart.
"""

from __future__ import annotations

import argparse
import collections

# The first category whose frames a sample's stack holds (outermost concerns first).
CATEGORIES = (
    ("autovacuum/analyze", ("vacuum", "analyze_rel", "do_autovacuum", "AutoVacWorkerMain")),
    ("connection start/end", ("InitPostgres", "BackendStartup", "unlink", "ShutdownPostgres", "proc_exit")),
    ("foreign-key triggers", ("AfterTriggerEndQuery", "AfterTriggerFireDeferred")),
    ("commit", ("CommitTransaction", "RecordTransactionCommit", "XLogFlush", "PreCommit_Notify", "AtCommit_Notify")),
    ("planner", ("pg_plan_queries", "standard_planner", "GetCachedPlan", "BuildCachedPlan", "RevalidateCachedQuery")),
    (
        "executor",
        (
            "standard_ExecutorRun",
            "ExecutePlan",
            "ExecModifyTable",
            "ExecutorStart",
            "ExecutorEnd",
            "ExecutorFinish",
            "PortalRunMulti",
            "PortalRun",
            "ExecuteQuery",
        ),
    ),
    (
        "parse/analyze",
        (
            "raw_parser",
            "base_yyparse",
            "parse_analyze",
            "pg_analyze_and_rewrite",
            "pg_parse_query",
            "transformStmt",
            "QueryRewrite",
            "pg_rewrite_query",
        ),
    ),
    ("network/idle", ("pq_", "secure_read", "secure_write", "ReadCommand", "WaitEventSetWait")),
)
# Within the executor.
EXECUTOR = (
    ("index inserts", ("ExecInsertIndexTuples", "btinsert", "_bt_doinsert", "index_insert")),
    ("pruning, bottom-up index deletion", ("heap_index_delete_tuples", "heap_page_prune", "_bt_bottomupdel")),
    ("heap inserts", ("heap_insert", "heap_multi_insert", "RelationGetBufferForTuple")),
    ("heap updates, row locks", ("heap_update", "heap_lock_tuple", "ExecLockRows")),
    (
        "index scans",
        ("index_getnext", "btgettuple", "_bt_first", "_bt_search", "index_fetch_heap", "heap_hot_search_buffer"),
    ),
    ("parameter input", ("array_in", "uuid_in", "jsonb_in", "InputFunctionCall", "EvaluateParams", "timestamptz_in")),
    ("executor start/end", ("InitPlan", "ExecInitNode", "ExecEndNode", "CreateExecutorState", "FreeExecutorState")),
)


def stacks(path: str):
    """(pid, [frames, innermost first]) of each sample in `perf script -F pid,ip,sym` output."""
    pid, frames = None, []
    for line in open(path, encoding="utf-8", errors="replace"):
        if not line.strip():
            if pid is not None:
                yield pid, frames
            pid, frames = None, []
        elif pid is None:
            pid = line.split()[0]
        else:
            parts = line.split(None, 1)
            frames.append(parts[1].strip() if len(parts) > 1 else "")
    if pid is not None:
        yield pid, frames


def first(frames: list, categories) -> str:
    for name, keys in categories:
        if any(key in frame for frame in frames for key in keys):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", help="`perf script -F pid,ip,sym` output, the cluster's processes only")
    parser.add_argument("--aux", default="", help="the cluster's auxiliary processes' pids, comma-separated")
    args = parser.parse_args()
    aux = set(filter(None, args.aux.split(",")))
    split, inside = collections.Counter(), collections.Counter()
    for pid, frames in stacks(args.stacks):
        if pid in aux:
            split["auxiliary processes"] += 1
            continue
        name = first(frames, CATEGORIES)
        split[name] += 1
        if name == "executor":
            inside[first(frames, EXECUTOR)] += 1
    total, executor = sum(split.values()) or 1, split["executor"] or 1
    for name, count in split.most_common():
        print(f"{name:36s} {count:7d} samples {100 * count / total:5.1f}%")
    for name, count in inside.most_common():
        print(f"  executor: {name:26s} {count:7d} samples {100 * count / executor:5.1f}% of the executor's")


if __name__ == "__main__":
    main()
