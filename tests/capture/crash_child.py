"""A process that captures at a steady rate until it is SIGKILLed (see test_capture_crash.py).

argv: spool_dir s3_url bucket flush_interval. Record i has eventId ``f"{i:032x}"``. After every
batch it prints ``"<records submitted so far> <time.time()>"``: every record below that count
was submitted at or before that time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.stores import S3ObjectStore
from shadowlab.capture.writer import CaptureWriter
from shadowlab.dataplane.observer import invocation_event
from tests.capture.support import s3_client


def main() -> None:
    spool_dir, url, bucket, flush_interval = sys.argv[1:5]
    options = WriterOptions(flush_interval=float(flush_interval), max_file_age=0.3)
    writer = CaptureWriter(S3ObjectStore(s3_client(url)), Path(spool_dir), options)
    writer.start()
    config = CaptureConfig(destination=f"s3://{bucket}/crash", csv_content_types=("text/csv",))
    submitted = 0
    while True:
        for _ in range(20):
            now = time.time()
            event = invocation_event(
                endpoint="ep",
                event_id=f"{submitted:032x}",
                inference_id=None,
                inference_time=now,
                request_body=b"5.1,3.5,1.4,0.2",
                request_content_type=b"text/csv",
                accept=None,
            )
            writer.submit(
                (event, "production", "prod", 200, b"0.97", b"text/csv", None, 0.0, "answered"),
                config,
            )
            submitted += 1
        # One write per line: under PYTHONUNBUFFERED, print() writes its pieces one syscall each,
        # and the SIGKILL can land between them.
        sys.stdout.write(f"{submitted} {time.time()}\n")
        sys.stdout.flush()
        time.sleep(0.01)


if __name__ == "__main__":
    main()
