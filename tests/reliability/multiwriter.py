"""A writer process for the concurrency tests and the bench: sessions of 50 events into one SQLite file.

usage: multiwriter.py NAME DB EVENTS           one process, one thread
       multiwriter.py --fork DB EVENTS         fork 3 children; each (and the parent) runs 2 threads and 2 tasks
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from vibekit_telemetry import Telemetry


def write(telemetry: Telemetry, name: str, events: int) -> None:
    for s in range(events // 50):
        sid = telemetry.track_start(name, "code", f"{name} session {s}")
        for i in range(48):
            telemetry.track_stream(sid, f"{name} {s} chunk {i}")
        telemetry.track_end(sid, "completed")


async def write_async(telemetry: Telemetry, name: str, events: int) -> None:
    for s in range(events // 50):
        sid = telemetry.track_start(name, "code", f"{name} session {s}")
        for i in range(48):
            telemetry.track_stream(sid, f"{name} {s} chunk {i}")
            if i % 16 == 0:
                await asyncio.sleep(0)  # let the other task interleave
        telemetry.track_end(sid, "completed")


def mixed(telemetry: Telemetry, name: str, events: int) -> None:
    threads = [threading.Thread(target=write, args=(telemetry, f"{name}-t{n}", events)) for n in range(2)]
    for thread in threads:
        thread.start()

    async def tasks() -> None:
        await asyncio.gather(*(write_async(telemetry, f"{name}-a{n}", events) for n in range(2)))
    asyncio.run(tasks())
    for thread in threads:
        thread.join()


def check(telemetry: Telemetry) -> None:
    assert telemetry.flush(300), telemetry.get_health_status()["dropped"]
    health = telemetry.get_health_status()
    assert health["dropped_total"] == 0, health["dropped"]


def main() -> None:
    if sys.argv[1] == "--fork":
        db, events = sys.argv[2], int(sys.argv[3])
        telemetry = Telemetry(db_path=db, stream_flush_interval_ms=20, max_queue_size=200_000)
        children = []
        for n in range(3):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    mixed(telemetry, f"child{n}", events)
                    check(telemetry)
                    telemetry.shutdown()
                except BaseException as exc:
                    print(f"child {n}: {exc!r}", file=sys.stderr)
                    code = 1
                os._exit(code)
            children.append(pid)
        mixed(telemetry, "parent", events)
        check(telemetry)
        telemetry.shutdown()
        failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
        sys.exit(1 if failed else 0)
    name, db, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    telemetry = Telemetry(db_path=db, stream_flush_interval_ms=20, max_queue_size=300_000)
    write(telemetry, name, events)
    check(telemetry)
    telemetry.shutdown()


if __name__ == "__main__":
    main()
