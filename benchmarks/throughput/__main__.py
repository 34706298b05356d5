"""`python -m benchmarks.throughput`: the thread environment is set before torch is imported (threads.py)."""

from resnet_repro.threads import use_project_thread_env

use_project_thread_env()

from benchmarks.throughput.cli import main  # noqa: E402 (after the thread environment: OpenMP reads it once)

main()
