"""Daily re-collection of every author (crawls are conditional, so unchanged pages cost a 304)."""

import dagster as dg

from twin_platform.defs.authors.partitions import AUTHORS_PARTITION


@dg.schedule(
    cron_schedule="0 3 * * *",
    target=dg.AssetSelection.assets("raw_documents"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_recollection(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    """One raw_documents run per registered author, every day at 03:00 UTC."""
    authors = context.instance.get_dynamic_partitions(AUTHORS_PARTITION)
    if not authors:
        return dg.SkipReason("no authors are registered")
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [dg.RunRequest(partition_key=author, run_key=f"recollect:{day}:{author}") for author in authors]
