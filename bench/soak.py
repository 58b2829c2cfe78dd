"""Soak: the live pipeline under supervisord for minutes, a worker SIGKILLed now and then.

Capture (looping recording, live mode, its own pace), two workers and the display run from
``scripts/run_pipeline.sh`` on free loopback ports. Every ``--kill-every-s`` one worker (in
turn) is killed with SIGKILL and supervisord restarts it. Every ``--sample-s`` the resident
memory (VmRSS) of every service is read from /proc, the pids asked afresh from supervisord, so
restarted workers are followed. At the end each service's memory is compared with its memory
after ``--warmup-s`` (per process: a restarted worker is compared with itself after its own
warm-up), and fps, drops and latency come from the services' /metrics.

    .venv/bin/python -m bench.soak                      # 30 minutes, a kill every 3 minutes
    .venv/bin/python -m bench.soak --minutes 1.5 --kill-every-s 30 --warmup-s 20   # smoke run
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from bench.common import MODEL, RECORDING, ROOT, BenchSettings, print_table, write_result
from bench.loopback import (
    free_loopback_port,
    free_loopback_port_prefix,
    histogram_quantile,
    scrape,
)
from shared.settings import load_settings

WORKERS: Final = 2
#: Memory may grow by this fraction between warm-up and the end.
RSS_TOLERANCE: Final = 0.10
#: Longest wait for every program to run and the first results to arrive.
START_TIMEOUT_S: Final = 300.0
#: Samples averaged (median) at each end of the comparison, so one GC spike does not decide.
SAMPLES_PER_END: Final = 3


@dataclass
class ProcessMemory:
    """The RSS samples of one process (one pid of one program)."""

    program: str
    pid: int
    first_seen_s: float
    samples: list[tuple[float, int]] = field(default_factory=list)

    def lifetime_s(self) -> float:
        return self.samples[-1][0] - self.first_seen_s if self.samples else 0.0

    def compare(self, warmup_s: float) -> dict[str, Any] | None:
        """RSS after its own warm-up vs at its end; None when it did not live past warm-up."""
        warm = [rss for t, rss in self.samples if t - self.first_seen_s >= warmup_s]
        if len(warm) < 2 * SAMPLES_PER_END:
            return None
        start = statistics.median(warm[:SAMPLES_PER_END])
        end = statistics.median(warm[-SAMPLES_PER_END:])
        return {
            "pid": self.pid,
            "rss_after_warmup_mib": round(start / 1024, 1),
            "rss_end_mib": round(end / 1024, 1),
            "ratio": round(end / start, 3),
            "measured_s": round(self.lifetime_s() - warmup_s, 1),
        }


def vm_rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB from /proc/<pid>/status; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def metrics(url: str) -> dict[str, float]:
    """``/metrics`` as {name without emojify_<service>_: value}; empty when it does not answer."""
    try:
        return scrape(url, timeout_s=3.0)
    except OSError:
        return {}


class Supervisor:
    """The pipeline under supervisord, and its XML-RPC interface for pids."""

    def __init__(self, scratch: Path) -> None:
        frames, preview, results, http, capture_status = (free_loopback_port() for _ in range(5))
        prefix = free_loopback_port_prefix(WORKERS)
        run_dir = scratch / "run"
        self.env = {
            **os.environ,
            "EMOJIFY_RUN_DIR": str(run_dir),
            "EMOJIFY_WORKERS": str(WORKERS),
            "EMOJIFY_WORKER_STATUS_PORT_PREFIX": str(prefix),
            "EMOJIFY_CAPTURE_SOURCE": str(RECORDING),
            "EMOJIFY_CAPTURE_LOOP": "true",
            "EMOJIFY_CAPTURE_MODE": "live",
            "EMOJIFY_CAPTURE_PACE": "source",
            "EMOJIFY_CAPTURE_FRAMES_ENDPOINT": f"tcp://127.0.0.1:{frames}",
            "EMOJIFY_CAPTURE_PREVIEW_ENDPOINT": f"tcp://127.0.0.1:{preview}",
            "EMOJIFY_CAPTURE_STATUS_PORT": str(capture_status),
            "EMOJIFY_WORKER_CAPTURE_ENDPOINTS": f"tcp://127.0.0.1:{frames}",
            "EMOJIFY_WORKER_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
            "EMOJIFY_WORKER_MODEL_PATH": str(MODEL),
            "EMOJIFY_WORKER_RELOAD_CHECK_S": "0",
            "EMOJIFY_DISPLAY_PREVIEW_ENDPOINTS": f"tcp://127.0.0.1:{preview}",
            "EMOJIFY_DISPLAY_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
            "EMOJIFY_DISPLAY_MODE": "live",
            "EMOJIFY_DISPLAY_SINKS": "http",
            "EMOJIFY_DISPLAY_HTTP_PORT": str(http),
        }
        self.env.pop("DISPLAY", None)
        self.urls = {
            "capture": f"http://127.0.0.1:{capture_status}/",
            "display": f"http://127.0.0.1:{http}/",
            **{f"worker-{n}": f"http://127.0.0.1:{prefix * 100 + n}/" for n in range(WORKERS)},
        }
        self.log_path = scratch / "supervisord.out"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run_pipeline.sh")],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.socket_url = f"unix://{run_dir}/supervisor.sock"

    def pids(self) -> dict[str, int]:
        """{program: pid} of the programs running now (empty until supervisord answers)."""
        from supervisor.xmlrpc import SupervisorTransport

        # A fresh transport per call: one that failed (supervisord not up yet) stays broken.
        transport = SupervisorTransport(None, None, self.socket_url)
        rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        try:
            infos: list[dict[str, Any]] = rpc.supervisor.getAllProcessInfo()  # type: ignore[assignment]
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return {}
        finally:
            transport.close()
        return {
            str(info["name"]): int(info["pid"])
            for info in infos
            if info["statename"] == "RUNNING" and int(info["pid"]) > 0
        }

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def wait_started(supervisor: Supervisor, deadline: float) -> None:
    programs = {"capture", "display", *(f"worker-{n}" for n in range(WORKERS))}
    while time.monotonic() < deadline:
        if not supervisor.alive():
            raise RuntimeError("supervisord exited:\n" + supervisor.log_path.read_text()[-3000:])
        if programs <= set(supervisor.pids()) and metrics(supervisor.urls["display"]).get(
            "results_per_s", 0.0
        ):
            return
        time.sleep(1.0)
    raise RuntimeError("the pipeline did not start in time:\n" + supervisor.log_path.read_text())


def soak(args: SoakBench, scratch: Path) -> dict[str, Any]:
    supervisor = Supervisor(scratch)
    memory: dict[int, ProcessMemory] = {}
    kills: list[dict[str, Any]] = []
    try:
        wait_started(supervisor, time.monotonic() + START_TIMEOUT_S)
        started = time.monotonic()
        end_at = started + args.minutes * 60
        next_sample = started
        next_kill = started + args.kill_every_s
        warm_metrics: dict[str, dict[str, float]] | None = None
        victim = 0
        print(f"pipeline up; soaking for {args.minutes} min", flush=True)
        while time.monotonic() < end_at:
            if not supervisor.alive():
                raise RuntimeError("supervisord exited during the soak")
            now = time.monotonic()
            if now >= next_sample:
                next_sample += args.sample_s
                for program, pid in supervisor.pids().items():
                    rss = vm_rss_kib(pid)
                    if rss is None:
                        continue
                    record = memory.setdefault(pid, ProcessMemory(program, pid, now - started))
                    record.samples.append((now - started, rss))
            if warm_metrics is None and now - started >= args.warmup_s:
                warm_metrics = {name: metrics(url) for name, url in supervisor.urls.items()}
            if now >= next_kill:
                next_kill += args.kill_every_s
                program = f"worker-{victim % WORKERS}"
                victim += 1
                victim_pid = supervisor.pids().get(program)
                if victim_pid is not None:
                    os.kill(victim_pid, signal.SIGKILL)
                    kills.append(
                        {"at_s": round(now - started, 1), "program": program, "pid": victim_pid}
                    )
                    print(
                        f"{now - started:7.1f} s: SIGKILL {program} (pid {victim_pid})", flush=True
                    )
            time.sleep(max(0.05, min(next_sample, next_kill, end_at) - time.monotonic()))
        end_metrics = {name: metrics(url) for name, url in supervisor.urls.items()}
    finally:
        supervisor.stop()
    return report(memory, kills, warm_metrics or {}, end_metrics, args)


def report(
    memory: dict[int, ProcessMemory],
    kills: list[dict[str, Any]],
    warm: dict[str, dict[str, float]],
    end: dict[str, dict[str, float]],
    args: Any,
) -> dict[str, Any]:
    """Per program: its longest-lived process's memory ratio; rates from /metrics."""
    programs: dict[str, Any] = {}
    for program in sorted({record.program for record in memory.values()}):
        records = sorted(
            (r for r in memory.values() if r.program == program),
            key=ProcessMemory.lifetime_s,
            reverse=True,
        )
        compared = records[0].compare(args.warmup_s)
        programs[program] = {
            "processes": len(records),
            "memory": compared,
            "passed": compared is not None and compared["ratio"] <= 1 + RSS_TOLERANCE,
            "all_processes": [
                {"pid": r.pid, "first_seen_s": round(r.first_seen_s, 1), "rss_kib": r.samples}
                for r in records
            ],
        }
    capture, display = end.get("capture", {}), end.get("display", {})
    warm_capture, warm_display = warm.get("capture", {}), warm.get("display", {})

    def since_warm(values: dict[str, float], before: dict[str, float], name: str) -> float:
        return values.get(name, 0.0) - before.get(name, 0.0)

    # Live mode: frames replaced before any worker took them, or lost on a lost worker.
    dropped = since_warm(capture, warm_capture, "replaced_total") + since_warm(
        capture, warm_capture, "lost_in_flight_total"
    )
    rates: dict[str, float | None] = {
        "capture_fps_in": capture.get("fps_in"),
        "capture_fps_out": capture.get("fps_out"),
        "display_fps_out": display.get("fps_out"),
        "display_results_per_s": display.get("results_per_s"),
        "latency_p50_ms": _ms(histogram_quantile(display, "end_to_end_seconds", 0.5)),
        "latency_p95_ms": _ms(histogram_quantile(display, "end_to_end_seconds", 0.95)),
        "frames_read_after_warmup": since_warm(capture, warm_capture, "frames_read_total"),
        "dropped_after_warmup": dropped,
        "worker_lost": capture.get("worker_lost_total"),
        "lost_in_flight": capture.get("lost_in_flight_total"),
        "display_rendered_after_warmup": since_warm(display, warm_display, "rendered_total"),
        "display_offline_events": display.get("offline_total"),
    }
    read = since_warm(capture, warm_capture, "frames_read_total")
    rates["drop_fraction"] = round(dropped / read, 4) if read else None
    passed = bool(programs) and all(p["passed"] for p in programs.values())
    return {
        "settings": {
            "minutes": args.minutes,
            "kill_every_s": args.kill_every_s,
            "warmup_s": args.warmup_s,
            "sample_s": args.sample_s,
            "workers": WORKERS,
            "rss_tolerance": RSS_TOLERANCE,
        },
        "passed": passed,
        "programs": programs,
        "kills": kills,
        "metrics": rates,
        "metrics_end": end,
    }


class SoakBench(BenchSettings):
    """Soak: the live pipeline under supervisord for minutes, a worker SIGKILLed now and
    then."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.soak")

    minutes: float = Field(default=30.0, gt=0, le=24 * 60, description="Length of the soak.")
    kill_every_s: float = Field(default=180.0, gt=0, description="SIGKILL a worker this often.")
    warmup_s: float = Field(
        default=120.0, ge=0, description="Memory is compared from this long on."
    )
    sample_s: float = Field(default=5.0, gt=0, description="Seconds between samples.")

    @model_validator(mode="after")
    def _warmup_within_soak(self) -> SoakBench:
        if self.warmup_s >= self.minutes * 60:
            raise ValueError("--warmup-s must be shorter than the soak (--minutes)")
        return self


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(SoakBench, argv)
    with tempfile.TemporaryDirectory(prefix="emojify-soak-") as scratch:
        result = soak(args, Path(scratch))
    rows = [
        [
            name,
            info["processes"],
            *(
                (m["rss_after_warmup_mib"], m["rss_end_mib"], m["ratio"], m["measured_s"])
                if (m := info["memory"])
                else ("-", "-", "-", "-")
            ),
            "pass" if info["passed"] else "FAIL",
        ]
        for name, info in result["programs"].items()
    ]
    print_table(
        ["program", "processes", "RSS warm MiB", "RSS end MiB", "ratio", "over s", "verdict"],
        rows,
    )
    print_table(["metric", "value"], [[k, v] for k, v in result["metrics"].items()])
    write_result(args.out_file("soak"), "soak", result)
    print("soak:", "PASS" if result["passed"] else "FAIL", flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
