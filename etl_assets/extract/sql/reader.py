"""The SQL reader process: one query through connectorx into an Arrow IPC file.

Run by `etl_assets.extract.sql.run.read_arrow` as `python -I reader.py` with the request as
JSON on stdin (the URL and its password never appear on a command line) and stderr discarded:
connectorx reports some failures as Rust panics, whose text the panic hook prints to stderr
with the offending value; here they stay in this process. It imports only pyarrow and
connectorx and answers with one JSON line on stdout: `{"rows": n}` or `{"error", "message"}`.
"""

import json
import sys

import connectorx as cx
import pyarrow as pa


def main() -> None:
    """Read the request, write the batches to the IPC file it names, answer on stdout."""
    request = json.loads(sys.stdin.read())
    try:
        batches = cx.read_sql(
            request["url"],
            request["query"],
            return_type="arrow_stream",
            batch_size=request["batch_rows"],
            pre_execution_query=request["pre"] or None,
        )
        rows = 0
        with pa.OSFile(request["out"], "wb") as sink:
            with pa.ipc.new_file(sink, batches.schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
    except BaseException as exc:  # a Rust panic is a BaseException
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
