"""The job runner: one way to run every child process (training, evaluation, generation, large ingests).

Modules:
    runner      job folders, `start_job`, `job_status`, `cancel_job`, `wait_job`, `read_progress`, `job_context`

The runner's public names are re-exported here (it needs only the standard library and `workbench.common`), so
`from workbench import jobs; jobs.start_job(...)` reads as before.
"""

from workbench.jobs.runner import (
                                   ACTIVE,
                                   JOB_ENV,
                                   PROGRESS_FILE,
                                   STATUS_FILE,
                                   TERMINAL,
                                   Cancelled,
                                   JobContext,
                                   cancel_job,
                                   child_env,
                                   job_context,
                                   job_status,
                                   list_jobs,
                                   log_tail,
                                   new_job_dir,
                                   one_line,
                                   process_alive,
                                   python_argv,
                                   read_progress,
                                   reap_children,
                                   spawn,
                                   start_job,
                                   wait_job,
)

__all__ = ["ACTIVE", "JOB_ENV", "PROGRESS_FILE", "STATUS_FILE", "TERMINAL", "Cancelled", "JobContext", "cancel_job",
           "child_env", "job_context", "job_status", "list_jobs", "log_tail", "new_job_dir", "one_line",
           "process_alive", "python_argv", "reap_children", "read_progress", "spawn", "start_job", "wait_job"]
