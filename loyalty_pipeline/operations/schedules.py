"""The daily schedule (previous business date at operations.schedule_time) and the freshness schedule."""

import datetime as dt

import dagster as dg

from ..program import Program, ProgramResource, load_program
from ..settings import program_path

SERIAL_TAG = "loyalty/serial"  # the instance runs runs with this tag one at a time, oldest first (instance.py)
TRIGGER_TAG = "loyalty/trigger"


def cron_at(time: dt.time) -> str:
    return f"{time.minute} {time.hour} * * *"


def previous_business_date(tick: dt.datetime, program: Program) -> dt.date:
    """The business date a tick processes: the day before the tick's local date in the program's zone."""
    return tick.astimezone(program.tz).date() - dt.timedelta(days=1)


def build_schedules(daily_job_name: str, freshness_job_name: str) -> list[dg.ScheduleDefinition]:
    # The cron strings are read from program.yaml when the code location loads (like the partitions).
    _program = load_program(program_path())
    ops = _program.operations

    @dg.schedule(
        name="daily_schedule",
        cron_schedule=cron_at(ops.schedule_time),
        execution_timezone=_program.timezone,
        job_name=daily_job_name,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day at operations.schedule_time (program time zone): the whole daily job for "
                    "the previous business date.",
    )
    def daily_schedule(context: dg.ScheduleEvaluationContext, program: ProgramResource):
        prog = program.load()
        day = previous_business_date(context.scheduled_execution_time, prog)
        if day < prog.partitions_start:
            return dg.SkipReason(f"{day} is before partitions_start {prog.partitions_start}")
        # A missing export fails the run loudly (the run-failure sensor reports it): no silent skip.
        return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat(),
                             tags={TRIGGER_TAG: "schedule", SERIAL_TAG: "daily"})

    @dg.schedule(
        name="freshness_schedule",
        cron_schedule=cron_at(ops.freshness_deadline),
        execution_timezone=_program.timezone,
        job_name=freshness_job_name,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="At operations.freshness_deadline: is yesterday's partition of every daily asset done?",
    )
    def freshness_schedule(context: dg.ScheduleEvaluationContext):
        as_of = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(run_key=as_of, tags={TRIGGER_TAG: "freshness"},
                             run_config={"ops": {"freshness_checks": {"config": {"as_of": as_of}}}})

    return [daily_schedule, freshness_schedule]
