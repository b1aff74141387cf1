"""Contract of the one private Dagster API we use (etl_assets/_dagster_private.py)."""

from etl_assets._dagster_private import is_valid_cron


def test_cron_validation_contract():
    for ok in ("@daily", "@hourly", "0 */2 * * *", "0 0 * * MON", "0 0 1 * *"):
        assert is_valid_cron(ok), ok
    for bad in ("every day", "61 * * * *", "", "* * *"):
        assert not is_valid_cron(bad), bad
