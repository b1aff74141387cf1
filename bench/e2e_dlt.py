"""The reference run of bench/e2e.py: dlt loading the same CSV files into PostgreSQL (Arrow,
replace). Runs in the benchmark's own virtualenv (bench/.venv-dlt), never in the project's.

    python bench/e2e_dlt.py DATA_DIR POSTGRES_URL
"""

import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dlt
import pyarrow.csv as pacsv


def main() -> None:
    data, url = Path(sys.argv[1]), sys.argv[2]
    parts = urlsplit(url)
    if parts.password is None:  # dlt insists on one; a trust-auth server ignores it
        user, _, host = parts.netloc.rpartition("@")
        url = urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:unused@{host}"))
    pipeline = dlt.pipeline(
        pipeline_name="bench_e2e",
        destination=dlt.destinations.postgres(credentials=url),
        dataset_name="dlt_e2e",
        pipelines_dir=str(data.parent / "dlt_pipelines"),
        progress="log" if "-v" in sys.argv else None,
    )
    for name in ("customers", "orders"):
        reader = pacsv.open_csv(data / f"{name}.csv")
        pipeline.run(
            (batch for batch in reader), table_name=name, write_disposition="replace"
        ).raise_on_failed_jobs()


if __name__ == "__main__":
    main()
